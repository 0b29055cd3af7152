-- promote: makes scheduled jobs whose time has come pending, each queued at
-- its due time.
-- KEYS[1] prefix
-- ARGV now, then the names of the job fields to return
-- Returns the promoted jobs (at most 1000 per call), each the values of the
-- job fields.
local promoted = promote_due(ARGV[1], 1000)
local fields = {unpack(ARGV, 2)}
local jobs = {}
for i, id in ipairs(promoted) do
  jobs[i] = redis.call('HMGET', job_key(id), unpack(fields))
end
return jobs
