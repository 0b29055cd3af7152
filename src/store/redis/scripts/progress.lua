-- progress: records a running job's progress, if the claim still holds.
-- KEYS[1] prefix
-- ARGV id, token, fraction, items_processed ('' keeps), total_items ('' keeps), now
-- Returns the job (flat HGETALL), or {} when the claim is lost.
local id, token = ARGV[1], ARGV[2]
local key = job_key(id)
local fields = redis.call('HMGET', key, 'status', 'claim_token')
if fields[1] ~= 'running' or fields[2] ~= token then
  return {}
end
update(id, ARGV[6], 'progress', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', key, 'items_processed', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', key, 'total_items', ARGV[5]) end
changed(id)
return redis.call('HGETALL', key)
