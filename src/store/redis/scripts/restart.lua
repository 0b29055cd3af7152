-- restart: puts a failed or cancelled job back to pending with its runs
-- reset; parameters replaced when given.
-- KEYS[1] prefix
-- ARGV id, now, parameters (JSON, or '' to keep)
-- Returns {'ok', job...} | {'not_found'} | {'conflict', status}.
local id, now = ARGV[1], ARGV[2]
local key = job_key(id)
local fields = redis.call('HMGET', key, 'status', 'user_id', 'priority')
local status = fields[1]
if not status then
  return {'not_found'}
end
if status ~= 'failed' and status ~= 'cancelled' then
  return {'conflict', status}
end
redis.call('ZREM', P .. 'done:failed', id)
update(id, now, 'status', 'pending', 'progress', 0, 'attempts', 0, 'interruptions', 0)
if ARGV[3] ~= '' then redis.call('HSET', key, 'parameters', ARGV[3]) end
redis.call('HDEL', key, 'result', 'error', 'items_processed', 'total_items', 'scheduled_for',
  'started_at', 'completed_at')
count(status, -1)
count('pending', 1)
enqueue(id, fields[2], tonumber(fields[3]))
changed(id)
wake_workers()
local job = redis.call('HGETALL', key)
table.insert(job, 1, 'ok')
return job
