-- cleanup: deletes one bounded batch of terminal jobs past their retention.
-- Pending, scheduled and running jobs are never in these indexes.
-- KEYS[1] prefix
-- ARGV completed_before, failed_before, batch size
-- Returns how many jobs were deleted.
local deleted = 0
local retired = {}
local function purge(index, before, limit)
  local ids = redis.call('ZRANGEBYSCORE', P .. index, '-inf', '(' .. before, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local status = redis.call('HGET', job_key(id), 'status')
    if status then
      count(status, -1)
      retired[status] = (retired[status] or 0) + 1
      redis.call('DEL', job_key(id), dependents_key(id), log_key(id), log_meta_key(id))
    end
    redis.call('ZREM', P .. index, id)
    redis.call('ZREM', P .. 'jobs', id)
    redis.call('ZREM', P .. 'watched', id)
    redis.call('ZREM', P .. 'expiring', id)
    deleted = deleted + 1
  end
end
local batch = tonumber(ARGV[3])
purge('done:completed', ARGV[1], batch)
purge('done:failed', ARGV[2], batch - deleted)
for status, n in pairs(retired) do retire(status, n) end
return deleted
