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
-- Counts kept locally and written once at the end: fewer commands per job.
local moved = {running = 0}
local users = {}
for i = 3, #ARGV, 6 do
  local id, token, status = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = job_key(id)
  local f = redis.call('HMGET', key, 'status', 'claim_token', 'user_id', 'revision', 'has_dependents')
  if f[1] ~= 'running' or f[2] ~= token then
    out[#out + 1] = {}
  else
    local revision = tonumber(f[4] or '0') + 1
    redis.call('ZREM', P .. 'running', id)
    users[f[3]] = (users[f[3]] or 0) + 1
    moved.running = moved.running - 1
    moved[status] = (moved[status] or 0) + 1
    if status == 'completed' then
      redis.call('HSET', key, 'status', status, 'result', ARGV[i + 3], 'progress', 1,
        'completed_at', now, 'updated_at', now, 'revision', revision)
      redis.call('HDEL', key, 'worker_id', 'claim_token', 'lease_expires_at', 'error')
      retain(id, status, now)
      if f[5] then release_dependents(id, now) end
    elseif status == 'scheduled' then
      redis.call('HSET', key, 'status', status, 'error', ARGV[i + 4], 'scheduled_for', ARGV[i + 5],
        'updated_at', now, 'revision', revision)
      redis.call('HDEL', key, 'worker_id', 'claim_token', 'lease_expires_at')
      redis.call('ZADD', P .. 'scheduled', ARGV[i + 5], id)
    else
      redis.call('HSET', key, 'status', status, 'error', ARGV[i + 4], 'completed_at', now,
        'updated_at', now, 'revision', revision)
      redis.call('HDEL', key, 'worker_id', 'claim_token', 'lease_expires_at')
      retain(id, status, now)
      if f[5] then cancel_dependents(id, status, now) end
    end
    local watched = redis.call('ZSCORE', P .. 'watched', id)
    if watched then
      redis.call('PUBLISH', P .. 'changes', id)
    end
    if reply == 'full' or status ~= 'completed' or watched then
      out[#out + 1] = redis.call('HGETALL', key)
    else
      out[#out + 1] = revision
    end
  end
end
for status, n in pairs(moved) do
  if n ~= 0 then count(status, n) end
end
for user, n in pairs(users) do
  if redis.call('HINCRBY', P .. 'user_running', user, -n) <= 0 then
    redis.call('HDEL', P .. 'user_running', user)
  end
end
return out
