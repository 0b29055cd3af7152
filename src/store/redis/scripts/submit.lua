-- submit: stores a new job: pending (queued), scheduled (for its time, or
-- waiting for unfinished dependencies), or cancelled at once when a
-- dependency already failed or was cancelled.
-- KEYS[1] prefix
-- ARGV id, job_type, user_id, priority, parameters (JSON), max_attempts,
--      timeout_seconds ('' for none), now, scheduled_for ('' for none),
--      then the ids of its dependencies
-- Returns {status, waiting_dependencies, cancelled_by or '', error or ''},
-- or {'missing', id} when a dependency does not exist.
local id, job_type, user, priority = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, scheduled_for = ARGV[8], ARGV[9]
local deps = {}
local waiting, cancelled_by, reason = 0, '', ''
for i = 10, #ARGV do
  local dep = ARGV[i]
  local status = redis.call('HGET', job_key(dep), 'status')
  if not status then
    return {'missing', dep}
  elseif status == 'failed' or status == 'cancelled' then
    if cancelled_by == '' then
      cancelled_by = dep
      reason = 'dependency ' .. dep .. (status == 'failed' and ' failed' or ' was cancelled')
    end
  elseif status ~= 'completed' then
    waiting = waiting + 1
  end
  deps[#deps + 1] = dep
end
local status = 'pending'
if cancelled_by ~= '' then
  status = 'cancelled'
elseif waiting > 0 or scheduled_for ~= '' then
  status = 'scheduled'
end
local key = job_key(id)
redis.call('HSET', key, 'id', id, 'job_type', job_type, 'user_id', user, 'status', status,
  'priority', priority, 'parameters', ARGV[5], 'max_attempts', ARGV[6], 'attempts', 0,
  'interruptions', 0, 'progress', 0, 'created_at', now, 'updated_at', now, 'revision', 1,
  'waiting_dependencies', waiting)
if ARGV[7] ~= '' then redis.call('HSET', key, 'timeout_seconds', ARGV[7]) end
if scheduled_for ~= '' then redis.call('HSET', key, 'scheduled_for', scheduled_for) end
if #deps > 0 then
  redis.call('HSET', key, 'depends_on', table.concat(deps, ','))
  for _, dep in ipairs(deps) do
    redis.call('SADD', dependents_key(dep), id)
    redis.call('HSET', job_key(dep), 'has_dependents', 1)
  end
end
redis.call('ZADD', P .. 'jobs', 0, id)
count(status, 1)
if status == 'cancelled' then
  redis.call('HSET', key, 'cancelled_by', cancelled_by, 'error', reason, 'completed_at', now)
  retain(id, 'cancelled', now)
elseif status == 'scheduled' then
  if waiting == 0 then
    redis.call('ZADD', P .. 'scheduled', scheduled_for, id)
  end
else
  enqueue(id, user, tonumber(priority))
  wake_workers()
end
return {status, waiting, cancelled_by, reason}
