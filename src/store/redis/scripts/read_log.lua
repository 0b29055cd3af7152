-- read_log: a page of a job's log after line `after`, with the job's status
-- (read in the same atomic step, so a terminal page is complete).
-- KEYS[1] prefix
-- ARGV id, after, limit
-- Returns {status, entries...} (see append_log.lua), or {} when the job
-- does not exist.
local id = ARGV[1]
local status = redis.call('HGET', job_key(id), 'status')
if not status then return {} end
local list = log_key(id)
local last = tonumber(redis.call('HGET', log_meta_key(id), 'seq') or '0')
local first = last - redis.call('LLEN', list) + 1
local from = math.max(tonumber(ARGV[2]) + 1, first)
local reply = {status}
if from <= last then
  local start = from - first
  local entries = redis.call('LRANGE', list, start, start + tonumber(ARGV[3]) - 1)
  for _, entry in ipairs(entries) do reply[#reply + 1] = entry end
end
return reply
