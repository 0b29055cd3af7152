-- list: jobs newest first (ids are UUID v7, so the lexicographic order of
-- the all-jobs index is creation order), filtered, scanning at most
-- max_scan ids per call.
-- KEYS[1] prefix
-- ARGV before (id or ''), limit, status, user_id, job_type ('' = any), max_scan,
--      then the fields to read of each job (a summary leaves out parameters
--      and result, so they are neither copied nor sent)
-- Returns {next_cursor or '', job, job, ...}, each job the HMGET of those fields.
local before, limit, status, user, job_type = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local max_scan = tonumber(ARGV[6])
local fields = {unpack(ARGV, 7)}
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
    scanned = scanned + 1
    last = id
    local f = redis.call('HMGET', job_key(id), 'status', 'user_id', 'job_type')
    if f[1] and (status == '' or f[1] == status) and (user == '' or f[2] == user)
        and (job_type == '' or f[3] == job_type) then
      out[#out + 1] = redis.call('HMGET', job_key(id), unpack(fields))
      if #out - 1 == limit then break end
    end
    if scanned >= max_scan then break end
  end
  upper = '(' .. last
end
out[1] = last or ''
return out
