-- submit: stores a new job, pending (queued) or scheduled.
-- KEYS[1] prefix
-- ARGV id, job_type, user_id, status ('pending'|'scheduled'), priority,
--      parameters (JSON), max_attempts, timeout_seconds ('' for none), now,
--      scheduled_for ('' unless scheduled)
-- Returns 1.
local id, job_type, user, status, priority = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = ARGV[9]
local key = job_key(id)
redis.call('HSET', key, 'id', id, 'job_type', job_type, 'user_id', user, 'status', status,
  'priority', priority, 'parameters', ARGV[6], 'max_attempts', ARGV[7], 'attempts', 0,
  'interruptions', 0, 'progress', 0, 'created_at', now, 'updated_at', now, 'revision', 1)
if ARGV[8] ~= '' then
  redis.call('HSET', key, 'timeout_seconds', ARGV[8])
end
redis.call('ZADD', P .. 'jobs', 0, id)
count(status, 1)
if status == 'scheduled' then
  redis.call('HSET', key, 'scheduled_for', ARGV[10])
  redis.call('ZADD', P .. 'scheduled', ARGV[10], id)
else
  enqueue(id, user, tonumber(priority))
  wake_workers()
end
return 1
