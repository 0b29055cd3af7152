-- claim_jobs: moves up to max_jobs pending jobs to running for one worker,
-- from the queues of the jobs it serves only, within the global and
-- per-user limits (which count every running job), serving users
-- round-robin (least recently served first) and, within a user's queue, by
-- priority then FIFO.
-- Promotes due scheduled jobs first. The i-th job claimed gets the claim
-- token tokens[first_token + i - 1].
-- Returns an array of claimed jobs, each the values of `fields` (the
-- caller's list, attempts and revision first) as they were before the
-- claim, and the ids of the jobs promoted. A job's lease is its score in
-- the running set.

-- Starts an attempt on job `id`. Returns the job's `fields` as they were
-- before: the caller knows what a claim changes (in Rust,
-- Job::start_attempt), so the script does not copy them. Nil if the job is
-- gone.
local function start_attempt(id, worker, token, now, fields)
  local key = job_key(id)
  local job = redis.call('HMGET', key, unpack(fields))
  if not job[1] then return nil end
  local attempts = tonumber(job[1])
  redis.call('HSET', key, 'status', 'running', 'started_at', now, 'updated_at', now,
    'worker_id', worker, 'claim_token', token, 'attempts', attempts + 1,
    'revision', tonumber(job[2]) + 1)
  if attempts > 0 then
    -- A retry or an interrupted attempt: the last attempt's end goes.
    redis.call('HDEL', key, 'completed_at', 'error')
  end
  return job
end

-- The users of the rotations of `queues` (two or more), least recently
-- served first across them (`served_seq` numbers every queue's turns), at
-- most `limit`: a list of {queue, user}.
local function merged_rotation(queues, limit)
  local entries = {}
  for _, q in ipairs(queues) do
    local ready = redis.call('ZRANGE', ready_key(q), 0, limit - 1, 'WITHSCORES')
    for i = 1, #ready, 2 do
      entries[#entries + 1] = {q, ready[i], tonumber(ready[i + 1])}
    end
  end
  table.sort(entries, function(a, b)
    if a[3] ~= b[3] then return a[3] < b[3] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[1] < b[1]
  end)
  for i = #entries, limit + 1, -1 do entries[i] = nil end
  return entries
end

-- `queues` are the queue suffixes the worker serves: {''} for a built-in
-- worker, {'@T', ...} for a remote one (see common.lua).
local function claim_jobs(worker, queues, max_jobs, global_max, per_user_max, lease_until, now, fields, tokens, first_token)
  -- A claim never starts a job past its deadline: those expire first
  -- (listed with the promoted jobs, as jobs that changed).
  local promoted = expire_due(now, 1000)
  for _, id in ipairs(promote_due(now, 1000)) do promoted[#promoted + 1] = id end
  local free = math.min(max_jobs, global_max - redis.call('ZCARD', P .. 'running'))
  local claimed, leases = {}, {}
  -- Counts kept locally and written once at the end: fewer commands per job.
  local user_running = {}
  local served = tonumber(redis.call('GET', P .. 'served_seq') or '0')
  -- Per queue, the users served this round, to go to the back.
  local rotation

  -- Gives `user` up to `share` jobs of its queue q, popped in one call,
  -- within its limit (counted over all its queues).
  local function serve(q, user, share)
    if not user_running[user] then
      user_running[user] = {tonumber(redis.call('HGET', P .. 'user_running', user) or '0'), 0}
    end
    local counts = user_running[user]
    local room = math.min(share, free, per_user_max - counts[1] - counts[2])
    if room <= 0 then return end
    local top = redis.call('ZPOPMIN', pending_key(q, user), room)
    for i = 1, #top, 2 do
      local id = queued_id(top[i])
      local token = tokens[first_token + #claimed]
      local job = start_attempt(id, worker, token, now, fields)
      -- A queue entry whose job is gone is dropped.
      if job then
        claimed[#claimed + 1] = job
        leases[#leases + 1] = lease_until
        leases[#leases + 1] = id
        counts[2] = counts[2] + 1
        changed(id)
        free = free - 1
      end
    end
    if #top > 0 then
      -- To the back of the rotation; a user whose queue turns out
      -- empty leaves it on the next visit.
      served = served + 1
      local back = rotation[q] or {}
      back[#back + 1] = served
      back[#back + 1] = user
      rotation[q] = back
    else
      leave_rotation(q, user)
    end
  end

  while free > 0 do
    -- One round: every user with room gets an equal share of the free
    -- slots (at least one job). Bounded: users at their limit are
    -- skipped, so a round looks at no more than this many.
    rotation = {}
    if #queues == 1 then
      local q = queues[1]
      local users = redis.call('ZRANGE', ready_key(q), 0, 999)
      local share = math.max(1, math.floor(free / #users))
      for _, user in ipairs(users) do
        if free == 0 then break end
        serve(q, user, share)
      end
    else
      local entries = merged_rotation(queues, 1000)
      local share = math.max(1, math.floor(free / #entries))
      for _, entry in ipairs(entries) do
        if free == 0 then break end
        serve(entry[1], entry[2], share)
      end
    end
    local moved = false
    for q, back in pairs(rotation) do
      call_chunked('ZADD', ready_key(q), back)
      moved = true
    end
    if not moved then break end
  end
  if #claimed > 0 then
    call_chunked('ZADD', P .. 'running', leases)
    count('pending', -#claimed)
    count('running', #claimed)
    redis.call('SET', P .. 'served_seq', served)
    for user, counts in pairs(user_running) do
      if counts[2] > 0 then
        redis.call('HINCRBY', P .. 'user_running', user, counts[2])
      end
    end
  end
  return claimed, promoted
end
