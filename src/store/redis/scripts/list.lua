-- list: jobs newest first (ids are UUID v7, so the lexicographic order of
-- the all-jobs index is creation order), filtered, scanning at most
-- max_scan ids per call.
-- KEYS[1] prefix
-- ARGV before (id or ''), limit, status, user_id, job_type ('' = any), max_scan,
--      max_bytes (of the big fields below, at least one job a page), the
--      number of big fields, then the fields to read of each job, the big
--      ones first (parameters, result and error, as far as read: a summary
--      leaves out parameters and result, so they are neither copied nor sent)
-- Returns {next_cursor or '', job, job, ...}, each job the HMGET of those fields.
local before, limit, status, user, job_type = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local max_scan, max_bytes, big = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local fields = {unpack(ARGV, 9)}
local bytes = 0
local upper = '+'
if before ~= '' then upper = '(' .. before end
local out = {''}
local scanned, last = 0, nil
while #out - 1 < limit and scanned < max_scan do
  local ids = redis.call('ZREVRANGEBYLEX', P .. 'jobs', upper, '-', 'LIMIT', 0, 200)
  if #ids == 0 then
    return out
  end
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', job_key(id), 'status', 'user_id', 'job_type')
    if f[1] and (status == '' or f[1] == status) and (user == '' or f[2] == user)
        and (job_type == '' or f[3] == job_type) then
      local job = redis.call('HMGET', job_key(id), unpack(fields))
      for i = 1, big do
        if job[i] then bytes = bytes + #job[i] end
      end
      if #out > 1 and bytes > max_bytes then
        -- Cut short: the next page starts at this job.
        out[1] = last
        return out
      end
      out[#out + 1] = job
    end
    scanned = scanned + 1
    last = id
    if #out - 1 == limit then break end
    if scanned >= max_scan then break end
  end
  upper = '(' .. last
end
out[1] = last or ''
return out
