-- expire: cancels jobs past their deadline to start by (see expire_due).
-- KEYS[1] prefix
-- ARGV now, then the names of the job fields to return
-- Returns the expired jobs (at most 1000 per call), each the values of the
-- job fields.
local expired = expire_due(ARGV[1], 1000)
local fields = {unpack(ARGV, 2)}
local jobs = {}
for i, id in ipairs(expired) do
  jobs[i] = redis.call('HMGET', job_key(id), unpack(fields))
end
return jobs
