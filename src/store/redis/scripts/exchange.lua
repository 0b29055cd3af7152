-- exchange: a worker's one round trip per batch. Ends its finished
-- attempts (finish_attempts), then claims jobs for the slots that frees
-- and any others it has (claim_jobs), so a busy worker never waits between
-- the two. Either part may be empty.
-- KEYS[1] prefix
-- ARGV now, reply ('full' | 'compact', see finish_attempts), n (attempts),
--      then 6 * n attempt values (see finish_attempts),
--      then the number of job fields an ended attempt returns and their
--      names, then worker_id, max_jobs, global_max, per_user_max,
--      lease_until, the number of remote types served ('' for a built-in
--      worker) and their names, the number of limited job types and per
--      type six values (name, per-key max, type max, rate count, rate
--      window in ms, '1' for a rate per key; '' for none), the number of
--      user weights and per user its name and weight, the number of job
--      fields a claim returns
--      and their names (see claim_jobs), then max_jobs claim tokens
-- Returns {finished, claimed, promoted}: the jobs a claim promoted first,
-- each the values of the job fields.
local now, reply, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local c = 4 + 6 * n
local n_job_fields = tonumber(ARGV[c])
local job_fields = {unpack(ARGV, c + 1, c + n_job_fields)}
local finished = finish_attempts(now, reply, job_fields, ARGV, 4, n)
c = c + n_job_fields + 1
local claimed, promoted = {}, {}
local max_jobs = tonumber(ARGV[c + 1])
if max_jobs > 0 then
  local queues = {''}
  local n_types = tonumber(ARGV[c + 5]) or 0
  if ARGV[c + 5] ~= '' then
    queues = {}
    for t = 1, n_types do queues[t] = '@' .. ARGV[c + 5 + t] end
  end
  local f = c + 6 + n_types
  local limits, weights = {}, {}
  for _ = 1, tonumber(ARGV[f]) do
    limits[ARGV[f + 1]] = {
      per_key = tonumber(ARGV[f + 2]), type_max = tonumber(ARGV[f + 3]),
      rate_count = tonumber(ARGV[f + 4]), rate_ms = tonumber(ARGV[f + 5]),
      rate_per_key = ARGV[f + 6] == '1',
    }
    f = f + 6
  end
  f = f + 1
  for _ = 1, tonumber(ARGV[f]) do
    weights[ARGV[f + 1]] = tonumber(ARGV[f + 2])
    f = f + 2
  end
  f = f + 1
  local n_fields = tonumber(ARGV[f])
  local fields = {unpack(ARGV, f + 1, f + n_fields)}
  claimed, promoted = claim_jobs(ARGV[c], queues, max_jobs, tonumber(ARGV[c + 2]),
    tonumber(ARGV[c + 3]), ARGV[c + 4], now, fields, ARGV, f + 1 + n_fields, limits, weights)
end
local promoted_jobs = {}
for i, id in ipairs(promoted) do
  promoted_jobs[i] = redis.call('HMGET', job_key(id), unpack(job_fields))
end
return {finished, claimed, promoted_jobs}
