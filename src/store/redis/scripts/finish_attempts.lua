-- finish_attempts: ends attempts (a worker's completions, batched), each
-- only if its claim still holds: completed, failed, or scheduled for a
-- retry. A cancelled or recovered job stays as it is.
-- args[first ...] holds `n` attempts of six values each: id, token, status,
-- result (JSON or ''), error (or ''), scheduled_for (or '').
-- Returns one entry per attempt: {} when the claim was lost; otherwise the
-- values of `fields` (the caller's list of job fields) as the attempt's end
-- left them, except with reply 'compact' for a completed job nobody
-- watches: just its new revision, since the caller holds the rest (the
-- drain's hot path, one HMGET fewer per job).
-- The fields an ended attempt drops: the claim's, `scheduled_for` (but
-- for a retry) and, if it held any, its limit slots.
local ENDED_FIELDS = {
  [false] = {[false] = {'worker_id', 'claim_token', 'scheduled_for'},
    [true] = {'worker_id', 'claim_token', 'scheduled_for', 'type_slot', 'key_slot'}},
  [true] = {[false] = {'worker_id', 'claim_token'},
    [true] = {'worker_id', 'claim_token', 'type_slot', 'key_slot'}},
}

local function finish_attempts(now, reply, fields, args, first, n)
  local out = {}
  -- Counts and index changes kept locally and written once at the end:
  -- fewer commands per job.
  local moved = {running = 0}
  local users = {}
  local ended, completed, failed = {}, {}, {}
  -- Limit slots freed, per hash of counts and slot (free_slot_counts).
  local freed
  for i = first, first + 6 * (n - 1), 6 do
    local id, token, status = args[i], args[i + 1], args[i + 2]
    local key = job_key(id)
    local f = redis.call('HMGET', key, 'status', 'claim_token', 'user_id', 'revision', 'has_dependents',
      'type_slot', 'key_slot')
    if f[1] ~= 'running' or f[2] ~= token then
      out[#out + 1] = {}
    else
      local revision = tonumber(f[4] or '0') + 1
      local held = (f[6] or f[7]) and true or false
      if held then
        freed = freed or {type_running = {}, key_running = {}}
        if f[6] then freed.type_running[f[6]] = (freed.type_running[f[6]] or 0) + 1 end
        if f[7] then freed.key_running[f[7]] = (freed.key_running[f[7]] or 0) + 1 end
      end
      ended[#ended + 1] = id
      users[f[3]] = (users[f[3]] or 0) + 1
      moved.running = moved.running - 1
      moved[status] = (moved[status] or 0) + 1
      if status == 'completed' then
        redis.call('HSET', key, 'status', status, 'result', args[i + 3], 'progress', 1,
          'completed_at', now, 'updated_at', now, 'revision', revision)
        redis.call('HDEL', key, unpack(ENDED_FIELDS[false][held]))
        completed[#completed + 1] = now
        completed[#completed + 1] = id
        if f[5] then release_dependents(id, now) end
      elseif status == 'scheduled' then
        redis.call('HSET', key, 'status', status, 'error', args[i + 4], 'scheduled_for', args[i + 5],
          'updated_at', now, 'revision', revision)
        redis.call('HDEL', key, unpack(ENDED_FIELDS[true][held]))
        redis.call('ZADD', P .. 'scheduled', args[i + 5], id)
        count_scheduled(f[3], 1)
      else
        redis.call('HSET', key, 'status', status, 'error', args[i + 4], 'completed_at', now,
          'updated_at', now, 'revision', revision)
        redis.call('HDEL', key, unpack(ENDED_FIELDS[false][held]))
        failed[#failed + 1] = now
        failed[#failed + 1] = id
        if f[5] then cancel_dependents(id, status, now) end
      end
      local watched = is_watched(id)
      if watched then
        redis.call('PUBLISH', P .. 'changes', id)
      end
      if reply == 'compact' and status == 'completed' and not watched then
        out[#out + 1] = revision
      else
        out[#out + 1] = redis.call('HMGET', key, unpack(fields))
      end
    end
  end
  if freed then free_slot_counts(freed, now) end
  call_chunked('ZREM', P .. 'running', ended)
  call_chunked('ZADD', P .. 'done:completed', completed)
  call_chunked('ZADD', P .. 'done:failed', failed)
  for status, k in pairs(moved) do
    if k ~= 0 then count(status, k) end
  end
  for user, k in pairs(users) do
    if redis.call('HINCRBY', P .. 'user_running', user, -k) <= 0 then
      redis.call('HDEL', P .. 'user_running', user)
    end
  end
  return out
end
