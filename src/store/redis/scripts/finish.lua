-- finish: ends an attempt, if the claim still holds: completed, failed, or
-- scheduled for a retry. A cancelled or recovered job stays as it is.
-- KEYS[1] prefix
-- ARGV id, token, status, result (JSON or ''), error (or ''),
--      scheduled_for (or ''), now
-- Returns the job (flat HGETALL), or {} when the claim is lost.
local id, token, status = ARGV[1], ARGV[2], ARGV[3]
local now = ARGV[7]
local key = job_key(id)
local fields = redis.call('HMGET', key, 'status', 'claim_token', 'user_id')
if fields[1] ~= 'running' or fields[2] ~= token then
  return {}
end
stop_running(id, fields[3])
redis.call('HDEL', key, 'worker_id', 'claim_token', 'lease_expires_at')
count('running', -1)
count(status, 1)
if status == 'completed' then
  update(id, now, 'status', status, 'result', ARGV[4], 'progress', 1, 'completed_at', now)
  redis.call('HDEL', key, 'error')
  retain(id, status, now)
elseif status == 'scheduled' then
  update(id, now, 'status', status, 'error', ARGV[5], 'scheduled_for', ARGV[6])
  redis.call('ZADD', P .. 'scheduled', ARGV[6], id)
else
  update(id, now, 'status', status, 'error', ARGV[5], 'completed_at', now)
  retain(id, status, now)
end
changed(id)
return redis.call('HGETALL', key)
