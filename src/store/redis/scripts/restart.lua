-- restart: puts a failed or cancelled job back to pending (or waiting for
-- its unfinished dependencies) with its runs reset, parameters replaced when
-- given; the dependents it cancelled wait again.
-- KEYS[1] prefix
-- ARGV id, now, parameters (JSON, or '' to keep), quota (queued jobs per
--      user at most, or '' for none)
-- Returns {'ok', job...} | {'not_found'} | {'conflict', status} |
-- {'quota', user, quota} when the job's user already has `quota` queued
-- jobs (nothing changed).
local id, now = ARGV[1], ARGV[2]
local key = job_key(id)
local fields = redis.call('HMGET', key, 'status', 'user_id', 'priority', 'remote', 'job_type')
local status = fields[1]
if not status then
  return {'not_found'}
end
if status ~= 'failed' and status ~= 'cancelled' then
  return {'conflict', status}
end
if ARGV[4] ~= '' and queued_of(fields[2]) >= tonumber(ARGV[4]) then
  return {'quota', fields[2], ARGV[4]}
end
redis.call('ZREM', P .. 'done:failed', id)
local waiting = unfinished_dependencies(id)
local next_status = waiting > 0 and 'scheduled' or 'pending'
update(id, now, 'status', next_status, 'progress', 0, 'attempts', 0, 'interruptions', 0,
  'waiting_dependencies', waiting)
if ARGV[3] ~= '' then redis.call('HSET', key, 'parameters', ARGV[3]) end
redis.call('HDEL', key, 'result', 'error', 'items_processed', 'total_items', 'scheduled_for',
  'started_at', 'completed_at', 'cancelled_by', 'expires_at')
redis.call('ZREM', P .. 'expiring', id)
count(status, -1)
retire(status, 1)
count(next_status, 1)
if next_status == 'scheduled' then
  count_scheduled(fields[2], 1)
else
  enqueue(id, queue_of(fields[4], fields[5]), fields[2], tonumber(fields[3]), now)
  wake_workers()
end
changed(id)
revive_dependents(id, now)
local job = redis.call('HGETALL', key)
table.insert(job, 1, 'ok')
return job
