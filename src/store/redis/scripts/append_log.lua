-- append_log: appends lines to a running job's log, if the claim still
-- holds, then drops the oldest lines while the log's text passes the cap.
-- The log is a list `log:<id>` of entries "seq\tat\tattempt\tstream\ttext",
-- oldest first, numbered without gaps; `log_meta:<id>` keeps the last
-- seq and the bytes of text held. Both are deleted with the job.
-- KEYS[1] prefix
-- ARGV id, token, now, max_bytes, then stream and text of each line
-- Returns 1, or 0 when the claim is lost (nothing is written).
local id, token = ARGV[1], ARGV[2]
local fields = redis.call('HMGET', job_key(id), 'status', 'claim_token', 'attempts')
if fields[1] ~= 'running' or fields[2] ~= token then
  return 0
end
local list, meta = log_key(id), log_meta_key(id)
local state = redis.call('HMGET', meta, 'seq', 'bytes')
local seq = tonumber(state[1] or '0')
local bytes = tonumber(state[2] or '0')
local head = '\t' .. ARGV[3] .. '\t' .. (fields[3] or '0') .. '\t'
local entries = {}
for i = 5, #ARGV, 2 do
  seq = seq + 1
  entries[#entries + 1] = string.format('%d', seq) .. head .. ARGV[i] .. '\t' .. ARGV[i + 1]
  bytes = bytes + #ARGV[i + 1]
end
if #entries == 0 then return 1 end
call_chunked('RPUSH', list, entries)
local max = tonumber(ARGV[4])
while bytes > max do
  local oldest = redis.call('LPOP', list)
  if not oldest then
    bytes = 0
    break
  end
  -- The text follows the fourth tab.
  local at = 0
  for _ = 1, 4 do at = string.find(oldest, '\t', at + 1, true) end
  bytes = bytes - (#oldest - at)
end
redis.call('HSET', meta, 'seq', string.format('%d', seq), 'bytes', string.format('%d', bytes))
return 1
