-- finish: ends attempts (a worker's completions, batched), each only if its
-- claim still holds: completed, failed, or scheduled for a retry. A
-- cancelled or recovered job stays as it is.
-- KEYS[1] prefix
-- ARGV now, reply ('full' | 'compact'), then for each attempt six values:
--      id, token, status, result (JSON or ''), error (or ''), scheduled_for (or '')
-- Returns one entry per attempt: {} when the claim was lost; otherwise the
-- job (flat HGETALL), except with 'compact' for a completed job nobody
-- watches, where it is just the new revision (the worker knows the rest).
local now, reply = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 6 do
  local id, token, status = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = job_key(id)
  local fields = redis.call('HMGET', key, 'status', 'claim_token', 'user_id')
  if fields[1] ~= 'running' or fields[2] ~= token then
    out[#out + 1] = {}
  else
    stop_running(id, fields[3])
    redis.call('HDEL', key, 'worker_id', 'claim_token', 'lease_expires_at')
    count('running', -1)
    count(status, 1)
    if status == 'completed' then
      update(id, now, 'status', status, 'result', ARGV[i + 3], 'progress', 1, 'completed_at', now)
      redis.call('HDEL', key, 'error')
      retain(id, status, now)
      release_dependents(id, now)
    elseif status == 'scheduled' then
      update(id, now, 'status', status, 'error', ARGV[i + 4], 'scheduled_for', ARGV[i + 5])
      redis.call('ZADD', P .. 'scheduled', ARGV[i + 5], id)
    else
      update(id, now, 'status', status, 'error', ARGV[i + 4], 'completed_at', now)
      retain(id, status, now)
      cancel_dependents(id, status, now)
    end
    changed(id)
    if reply == 'full' or status ~= 'completed' or redis.call('ZSCORE', P .. 'watched', id) then
      out[#out + 1] = redis.call('HGETALL', key)
    else
      out[#out + 1] = tonumber(redis.call('HGET', key, 'revision'))
    end
  end
end
return out
