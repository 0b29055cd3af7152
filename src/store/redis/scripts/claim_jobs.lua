-- claim_jobs: moves up to max_jobs pending jobs to running for one worker,
-- from the queues of the jobs it serves only, within the global and
-- per-user limits (which count every running job) and the limits per job
-- type (per concurrency key, per type, a rate: a job over one is parked,
-- see common.lua), serving users round-robin (least recently served first,
-- a share by weight) and, within a user's queue, by priority then FIFO.
-- Promotes due scheduled jobs first. The i-th job claimed gets the claim
-- token tokens[first_token + i - 1].
-- Returns an array of claimed jobs, each the values of `fields` (the
-- caller's list, attempts and revision first) as they were before the
-- claim, and the ids of the jobs promoted. A job's lease is its score in
-- the running set.

-- Starts an attempt on job `id`, whose `fields` (attempts and revision
-- first) `job` holds as they were before: the caller knows what a claim
-- changes (in Rust, Job::start_attempt), so the script does not copy
-- them. `...`: more fields to set (the limit slots the job takes).
local function start_attempt(id, job, worker, token, now, ...)
  local key = job_key(id)
  local attempts = tonumber(job[1])
  redis.call('HSET', key, 'status', 'running', 'started_at', now, 'updated_at', now,
    'worker_id', worker, 'claim_token', token, 'attempts', attempts + 1,
    'revision', tonumber(job[2]) + 1, ...)
  if attempts > 0 then
    -- A retry or an interrupted attempt: the last attempt's end goes.
    redis.call('HDEL', key, 'completed_at', 'error')
  end
end

-- Parks a job popped from its user's queue (`member`, `score`) on
-- `scope` (see unpark in common.lua). `parked` counts the jobs parked per
-- scope and per user, for the claim to write once at the end.
local function park(id, user, scope, member, score, now, parked)
  if redis.call('ZADD', parked_key(scope), score, member) == 1 then
    parked.scopes[scope] = (parked.scopes[scope] or 0) + 1
  end
  if string.sub(scope, 1, 5) ~= 'rate:' then
    redis.call('ZADD', P .. 'parked_check', 'NX', now + 1000, scope)
  end
  redis.call('HSET', job_key(id), 'parked', scope)
  parked.users[user] = (parked.users[user] or 0) + 1
end

-- Writes the counts a claim kept: `cache` maps each field of hash `hash`
-- read this claim to {count read, count added}; the fields that grew get
-- their new counts in one command (the script alone ran since the read).
local function write_counts(hash, cache)
  local set = {}
  for field, c in pairs(cache) do
    if c[2] > 0 then
      set[#set + 1] = field
      set[#set + 1] = c[1] + c[2]
    end
  end
  if #set > 0 then call_chunked('HSET', P .. hash, set) end
end

-- The value of the field '' of `key_running` (no slot: a slot holds
-- \31): longer than Redis's hash-max-listpack-value (64 by default), so
-- the hash is a hash table, where a key's count is found in O(1), rather
-- than a listpack searched end to end (as many entries as running slots)
-- on each of the claim's and the stop's commands.
local KEY_RUNNING_TABLE = 'keeps this hash a hash table: O(1) lookups of per-key running counts'

-- Jobs a claim parks at most: a long run of blocked jobs is left for the
-- next claim rather than making one script long.
local MAX_PARKED_PER_CLAIM = 1000

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
-- `limits`: per job type {per_key, type_max, rate_count, rate_ms,
-- rate_per_key} (each nil for none); `weights`: per user its round-robin
-- weight (1 when absent). Without limits the claim reads no job field
-- beyond `fields`.
local function claim_jobs(worker, queues, max_jobs, global_max, per_user_max, lease_until, now, fields, tokens, first_token, limits, weights)
  -- A claim never starts a job past its deadline: those expire first
  -- (listed with the promoted jobs, as jobs that changed).
  local promoted = expire_due(now, 1000)
  for _, id in ipairs(promote_due(now, 1000)) do promoted[#promoted + 1] = id end
  local limited = next(limits) ~= nil
  local read_fields, n_fields = fields, #fields
  -- Where a job's type and concurrency key are in what the claim reads:
  -- among the caller's fields, else in two more.
  local type_at, key_at
  -- Per type, running counts and rate windows as read, and what this
  -- claim added; written at the end.
  local type_running, windows = {}, {}
  local parked_now = 0
  local parked = {scopes = {}, users = {}}
  if limited then
    for i, name in ipairs(fields) do
      if name == 'job_type' then type_at = i elseif name == 'concurrency_key' then key_at = i end
    end
    for _, l in pairs(limits) do
      if l.per_key then
        redis.call('HSETNX', P .. 'key_running', '', KEY_RUNNING_TABLE)
        break
      end
    end
    if not (type_at and key_at) then
      read_fields = {unpack(fields)}
      read_fields[n_fields + 1] = 'job_type'
      read_fields[n_fields + 2] = 'concurrency_key'
      type_at, key_at = n_fields + 1, n_fields + 2
    end
  end
  -- Parked scopes due for a look (a rate window opened; a key or type
  -- looked at every second, so that jobs parked under limits since
  -- lowered or removed, or counters lost, never wait for good): as many
  -- jobs as the limit has room for go back to their queues; a scope with
  -- jobs left is looked at again. One command per claim when none is due.
  local emptied, woke = {}, false
  for _, scope in ipairs(redis.call('ZRANGEBYSCORE', P .. 'parked_check', '-inf', now, 'LIMIT', 0, 100)) do
    local kind, rest = string.match(scope, '^(%a+):(.*)$')
    local again = 1000
    local left = redis.call('ZCARD', parked_key(scope))
    if left > 0 then
      local job_type = string.match(rest or '', '^[^\31]*')
      local l = limits[job_type] or {}
      local room = 1000
      if kind == 'rate' then
        room, again = l.rate_count or room, l.rate_ms or again
      elseif kind == 'key' and l.per_key then
        room = l.per_key - tonumber(redis.call('HGET', P .. 'key_running', rest) or '0')
      elseif kind == 'type' and l.type_max then
        room = l.type_max - tonumber(redis.call('HGET', P .. 'type_running', rest) or '0')
      end
      if room > 0 then
        local popped = unpark(scope, room, now)
        woke = woke or popped > 0
        left = left - popped
      end
    end
    if left > 0 then
      redis.call('ZADD', P .. 'parked_check', now + again, scope)
      -- The count a stop reads, set right again (should it be off).
      redis.call('HSET', P .. 'parked_count', scope, left)
    else
      emptied[#emptied + 1] = scope
    end
  end
  if #emptied > 0 then
    call_chunked('ZREM', P .. 'parked_check', emptied)
    call_chunked('HDEL', P .. 'parked_count', emptied)
  end
  if woke then wake_workers() end

  local function running_of(cache, hash, field)
    local c = cache[field]
    if not c then
      c = {tonumber(redis.call('HGET', P .. hash, field) or '0'), 0}
      cache[field] = c
    end
    return c
  end

  local function window_of(scope)
    local w = windows[scope]
    if not w then
      -- The window: when it closes and its starts; a closed one is empty.
      local f = redis.call('HMGET', P .. 'rate:' .. scope, 'closes', 'started')
      if f[1] and tonumber(f[1]) > tonumber(now) then
        w = {tonumber(f[2] or '0'), 0, tonumber(f[1])}
      else
        w = {0, 0, nil}
      end
      windows[scope] = w
    end
    return w
  end

  -- Gives back a key slot admit took for a job it then refused.
  local function give_back(slot)
    if redis.call('HINCRBY', P .. 'key_running', slot, -1) <= 0 then
      redis.call('HDEL', P .. 'key_running', slot)
    end
  end

  -- Whether a job of `job_type` with `key` may start now. Returns nil and
  -- the slots it takes, or the scope it waits on (and for a rate scope,
  -- the rate window).
  local function admit(job_type, key)
    local l = limits[job_type]
    if not l then return nil end
    local type_c, key_taken, window
    if l.type_max then
      type_c = running_of(type_running, 'type_running', job_type)
      if type_c[1] + type_c[2] >= l.type_max then return 'type:' .. job_type end
    end
    local slot
    if key then slot = job_type .. '\31' .. key end
    if l.per_key and slot then
      -- Taken at once, one command; given back if that was over the limit
      -- (keys are many: a claim rarely meets one twice).
      if redis.call('HINCRBY', P .. 'key_running', slot, 1) > l.per_key then
        give_back(slot)
        return 'key:' .. slot
      end
      key_taken = true
    end
    local rate_scope
    -- A rate per key leaves jobs without a key unlimited.
    if l.rate_count and (slot or not l.rate_per_key) then
      rate_scope = (l.rate_per_key and slot) or job_type
      window = window_of(rate_scope)
      if window[1] + window[2] >= l.rate_count then
        if key_taken then give_back(slot) end
        redis.call('ZADD', P .. 'parked_check', window[3], 'rate:' .. rate_scope)
        return 'rate:' .. rate_scope
      end
    end
    local taken
    if type_c then
      type_c[2] = type_c[2] + 1
      taken = {'type_slot', job_type}
    end
    if key_taken then
      if taken then
        taken[3], taken[4] = 'key_slot', slot
      else
        taken = {'key_slot', slot}
      end
    end
    if window then
      local key = P .. 'rate:' .. rate_scope
      if window[1] + window[2] == 0 then
        -- A new window: it closes `rate_ms` after its first start (the
        -- key's own expiry, a little later, only collects it).
        window[3] = now + l.rate_ms
        redis.call('HSET', key, 'closes', window[3], 'started', 1)
        redis.call('PEXPIRE', key, l.rate_ms + 60000)
        window[1] = 1
      else
        redis.call('HINCRBY', key, 'started', 1)
        window[2] = window[2] + 1
      end
    end
    return nil, taken
  end

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
      local job = redis.call('HMGET', job_key(id), unpack(read_fields))
      local wait, taken
      if limited and job[1] then
        local job_type, key = job[type_at], job[key_at] or nil
        if key_at > n_fields then
          job[key_at] = nil
          job[type_at] = nil
        end
        wait, taken = admit(job_type, key)
      end
      -- A queue entry whose job is gone is dropped.
      if not job[1] then
      elseif wait then
        park(id, user, wait, top[i], top[i + 1], now, parked)
        parked_now = parked_now + 1
      else
        if taken then
          start_attempt(id, job, worker, token, now, unpack(taken))
        else
          start_attempt(id, job, worker, token, now)
        end
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

  -- Each user's share of the free slots this round, by its weight (at
  -- least one job): a function of the user. `items` are the round's
  -- entries, `user_of` names an entry's user.
  local function shares(items, user_of)
    local total = 0
    for _, item in ipairs(items) do total = total + (weights[user_of(item)] or 1) end
    local slots = free
    return function(user)
      return math.max(1, math.floor(slots * (weights[user] or 1) / math.max(total, 1)))
    end
  end

  while free > 0 do
    -- One round: every user with room gets a share of the free slots by
    -- its weight (at least one job). Bounded: users at their limit are
    -- skipped, so a round looks at no more than this many.
    rotation = {}
    if #queues == 1 then
      local q = queues[1]
      local users = redis.call('ZRANGE', ready_key(q), 0, 999)
      local share = shares(users, function(user) return user end)
      for _, user in ipairs(users) do
        if free == 0 then break end
        serve(q, user, share(user))
      end
    else
      local entries = merged_rotation(queues, 1000)
      local share = shares(entries, function(entry) return entry[2] end)
      for _, entry in ipairs(entries) do
        if free == 0 then break end
        serve(entry[1], entry[2], share(entry[2]))
      end
    end
    local moved = false
    for q, back in pairs(rotation) do
      call_chunked('ZADD', ready_key(q), back)
      moved = true
    end
    if not moved or parked_now >= MAX_PARKED_PER_CLAIM then break end
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
    write_counts('type_running', type_running)
  end
  for scope, n in pairs(parked.scopes) do
    redis.call('HINCRBY', P .. 'parked_count', scope, n)
  end
  for user, n in pairs(parked.users) do
    redis.call('HINCRBY', P .. 'user_parked', user, n)
  end
  return claimed, promoted
end
