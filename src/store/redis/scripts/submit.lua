-- submit: stores new jobs, all or none. Each is pending (queued),
-- scheduled (for its time, or waiting for unfinished dependencies), or
-- cancelled at once when a dependency already failed or was cancelled. A
-- job may depend on a job stored before or on one earlier in the call
-- (a chain). Every id and dependency is checked before anything is
-- written, so a bad one leaves no job behind.
-- KEYS[1] prefix
-- ARGV now, count, quota (queued jobs per user at most, or '' for none),
--      then per job: id, job_type, user_id, priority,
--      parameters (JSON), max_attempts, timeout_seconds ('' for none),
--      scheduled_for ('' for none), remote ('1', or '' for a built-in job),
--      expires_at ('' for none), concurrency key ('' for none),
--      dependency count, the dependencies;
--      then, for an idempotent call of one job: 'idem', the key, its
--      fingerprint, its lifetime in ms; or
--      for a debounced call of one job (without dependencies): 'debounce',
--      the key, the period in ms, the longest wait in ms; or
--      for a schedule's tick (one job): 'schedule', the schedule's name,
--      the revision the tick was computed from, the tick
-- Returns per job {status, waiting_dependencies, cancelled_by or '',
-- error or ''}; or {'missing', id} when a dependency does not exist, or
-- {'exists', id} when a job id is taken; or {'quota', user, quota} when
-- the call would leave a user with more queued (pending or scheduled) jobs
-- than the quota; or, for an idempotent call whose key holds a job of the
-- same user still stored, {'existing', id} (same fingerprint) or
-- {'mismatch', id} (another), storing nothing; or, for a debounced call
-- whose key holds a job still waiting (scheduled, no attempt yet),
-- {'debounced', id}: that job took the call's input and settings; or, for
-- a tick the schedule does not owe (changed, paused, or fired already),
-- {'skipped'}, storing nothing.
local now = ARGV[1]
local jobs, in_call = {}, {}
local i = 4
for j = 1, tonumber(ARGV[2]) do
  local ndeps = tonumber(ARGV[i + 11])
  local job = {
    id = ARGV[i], job_type = ARGV[i + 1], user = ARGV[i + 2], priority = ARGV[i + 3],
    parameters = ARGV[i + 4], max_attempts = ARGV[i + 5], timeout = ARGV[i + 6],
    scheduled_for = ARGV[i + 7], remote = ARGV[i + 8], expires_at = ARGV[i + 9],
    concurrency_key = ARGV[i + 10], deps = {},
  }
  job.key = job_key(job.id)
  for d = 1, ndeps do
    local dep = ARGV[i + 11 + d]
    if not in_call[dep] and redis.call('EXISTS', job_key(dep)) == 0 then
      return {'missing', dep}
    end
    job.deps[d] = dep
  end
  if in_call[job.id] then
    return {'exists', job.id}
  end
  in_call[job.id] = true
  jobs[j] = job
  i = i + 12 + ndeps
end
-- Ids taken already: one EXISTS per thousand jobs, and one a job only
-- when that finds any.
for first = 1, #jobs, 1000 do
  local last = math.min(first + 999, #jobs)
  local keys = {}
  for j = first, last do keys[#keys + 1] = jobs[j].key end
  if redis.call('EXISTS', unpack(keys)) > 0 then
    for j = first, last do
      if redis.call('EXISTS', jobs[j].key) == 1 then return {'exists', jobs[j].id} end
    end
  end
end

-- The idempotency key: one hash per user and key, expiring with the key.
local idempotency = ARGV[i] == 'idem' and {
  key = P .. 'idem:' .. redis.sha1hex(jobs[1].user .. '\n' .. ARGV[i + 1]),
  fingerprint = ARGV[i + 2], ttl = ARGV[i + 3],
}
-- The debounce key: one hash per user, job type and key, holding the job
-- its first submission stored and when; it expires a minute after its job
-- is due (past that it would collapse nothing: the job is no longer
-- waiting).
local debounce = ARGV[i] == 'debounce' and {
  key = P .. 'debounce:' .. redis.sha1hex(jobs[1].user .. '\n' .. jobs[1].job_type .. '\n'
    .. ARGV[i + 1]),
  period = tonumber(ARGV[i + 2]), max_wait = tonumber(ARGV[i + 3]),
}
if debounce then
  local held = redis.call('HMGET', debounce.key, 'job', 'first_at')
  local id = held[1]
  local f = id and redis.call('HMGET', job_key(id), 'status', 'attempts', 'waiting_dependencies')
  if f and f[1] == 'scheduled' and tonumber(f[2] or '0') == 0 and tonumber(f[3] or '0') == 0 then
    local job = jobs[1]
    local due = math.min(tonumber(now) + debounce.period, tonumber(held[2]) + debounce.max_wait)
    update(id, now, 'parameters', job.parameters, 'priority', job.priority,
      'max_attempts', job.max_attempts, 'scheduled_for', due)
    if job.timeout ~= '' then
      redis.call('HSET', job_key(id), 'timeout_seconds', job.timeout)
    else
      redis.call('HDEL', job_key(id), 'timeout_seconds')
    end
    if job.concurrency_key ~= '' then
      redis.call('HSET', job_key(id), 'concurrency_key', job.concurrency_key)
    else
      redis.call('HDEL', job_key(id), 'concurrency_key')
    end
    redis.call('ZADD', P .. 'scheduled', due, id)
    redis.call('PEXPIRE', debounce.key, math.max(due - tonumber(now), 0) + 60000)
    if job.expires_at ~= '' then
      redis.call('HSET', job_key(id), 'expires_at', job.expires_at)
      redis.call('ZADD', P .. 'expiring', job.expires_at, id)
    else
      redis.call('HDEL', job_key(id), 'expires_at')
      redis.call('ZREM', P .. 'expiring', id)
    end
    changed(id)
    return {'debounced', id}
  end
end
-- A schedule's tick: fired once, from the revision it was computed from.
local schedule = ARGV[i] == 'schedule' and {
  key = P .. 'schedule:' .. ARGV[i + 1], name = ARGV[i + 1],
  revision = ARGV[i + 2], tick = ARGV[i + 3],
}
if schedule then
  local held = redis.call('HMGET', schedule.key, 'revision', 'paused', 'last_tick_at')
  if held[1] ~= schedule.revision or held[2] ~= '0'
      or (held[3] and tonumber(held[3]) >= tonumber(schedule.tick)) then
    return {'skipped'}
  end
end
if idempotency then
  local held = redis.call('HMGET', idempotency.key, 'fingerprint', 'job', 'expires_at')
  -- Past its lifetime (by the callers' clock; the key's own expiry only
  -- collects it), or whose job retention deleted, a key holds nothing.
  if held[2] and tonumber(held[3]) > tonumber(now)
      and redis.call('EXISTS', job_key(held[2])) == 1 then
    return {held[1] == idempotency.fingerprint and 'existing' or 'mismatch', held[2]}
  end
end

-- The quota: each job of the call that will be queued (not cancelled at
-- once for a dependency that failed or was cancelled, before the call or
-- in it) counts for its user.
if ARGV[3] ~= '' then
  local quota = tonumber(ARGV[3])
  local dead, adding = {}, {}
  for _, job in ipairs(jobs) do
    local cancelled = false
    for _, dep in ipairs(job.deps) do
      if in_call[dep] then
        cancelled = cancelled or dead[dep] == true
      else
        local status = redis.call('HGET', job_key(dep), 'status')
        cancelled = cancelled or status == 'failed' or status == 'cancelled'
      end
    end
    dead[job.id] = cancelled
    if not cancelled then adding[job.user] = (adding[job.user] or 0) + 1 end
  end
  for user, n in pairs(adding) do
    if queued_of(user) + n > quota then
      return {'quota', user, ARGV[3]}
    end
  end
end

-- What the call adds to shared keys, gathered while its jobs are stored
-- and written once at the end: a batch pays one command a job (HSET), not
-- eight.
local all_ids, status_counts, queues = {}, {}, {}
-- Queue sequence numbers for the whole call, reserved at once (a number
-- left unused leaves a harmless gap: they only order).
local first_seq = redis.call('INCRBY', P .. 'queue_seq', #jobs) - #jobs

-- Stores one checked job, the j-th of the call; returns its reply.
local function store(j, job)
  local id = job.id
  local waiting, cancelled_by, reason = 0, '', ''
  for _, dep in ipairs(job.deps) do
    local status = redis.call('HGET', job_key(dep), 'status')
    if status == 'failed' or status == 'cancelled' then
      if cancelled_by == '' then
        cancelled_by = dep
        reason = 'dependency ' .. dep .. (status == 'failed' and ' failed' or ' was cancelled')
      end
    elseif status ~= 'completed' then
      waiting = waiting + 1
    end
  end
  local status = 'pending'
  if cancelled_by ~= '' then
    status = 'cancelled'
  elseif waiting > 0 or job.scheduled_for ~= '' then
    status = 'scheduled'
  end
  local key = job.key
  local fields = {'id', id, 'job_type', job.job_type, 'user_id', job.user,
    'status', status, 'priority', job.priority, 'parameters', job.parameters,
    'max_attempts', job.max_attempts, 'attempts', '0', 'interruptions', '0', 'progress', '0',
    'created_at', now, 'updated_at', now, 'revision', '1',
    'waiting_dependencies', tostring(waiting)}
  local function add(field, value)
    fields[#fields + 1] = field
    fields[#fields + 1] = value
  end
  if job.timeout ~= '' then add('timeout_seconds', job.timeout) end
  if job.scheduled_for ~= '' then add('scheduled_for', job.scheduled_for) end
  -- Kept only for a remote job: a built-in job's hash stays as it was.
  if job.remote == '1' then add('remote', '1') end
  if #job.deps > 0 then add('depends_on', table.concat(job.deps, ',')) end
  if job.concurrency_key ~= '' then add('concurrency_key', job.concurrency_key) end
  if job.expires_at ~= '' then
    add('expires_at', job.expires_at)
    if status ~= 'cancelled' then redis.call('ZADD', P .. 'expiring', job.expires_at, id) end
  end
  if status == 'cancelled' then
    add('cancelled_by', cancelled_by)
    add('error', reason)
    add('completed_at', now)
  end
  local queue
  if status == 'pending' then
    -- Queued as `enqueue` (common.lua) would, in one ZADD per queue.
    local q = queue_of(job.remote, job.job_type)
    local member = queue_member(now, first_seq + j, id)
    add('queue_member', member)
    local key_of_queue = pending_key(q, job.user)
    queue = queues[key_of_queue]
    if not queue then
      queue = {q = q, user = job.user, entries = {}}
      queues[key_of_queue] = queue
    end
    queue.entries[#queue.entries + 1] = -tonumber(job.priority)
    queue.entries[#queue.entries + 1] = member
  end
  redis.call('HSET', key, unpack(fields))
  for _, dep in ipairs(job.deps) do
    redis.call('SADD', dependents_key(dep), id)
    redis.call('HSET', job_key(dep), 'has_dependents', 1)
  end
  all_ids[#all_ids + 1] = 0
  all_ids[#all_ids + 1] = id
  status_counts[status] = (status_counts[status] or 0) + 1
  if status == 'cancelled' then
    retain(id, 'cancelled', now)
  elseif status == 'scheduled' then
    count_scheduled(job.user, 1)
    if waiting == 0 then
      redis.call('ZADD', P .. 'scheduled', job.scheduled_for, id)
    end
  end
  return {status, waiting, cancelled_by, reason}
end

local replies = {}
for j, job in ipairs(jobs) do
  replies[j] = store(j, job)
end
call_chunked('ZADD', P .. 'jobs', all_ids)
for status, n in pairs(status_counts) do count(status, n) end
for key_of_queue, queue in pairs(queues) do
  call_chunked('ZADD', key_of_queue, queue.entries)
  join_rotation(queue.q, queue.user)
end
-- One wake-up for the call, not one per job: every process hears it.
if next(queues) then wake_workers() end
if idempotency then
  redis.call('HSET', idempotency.key, 'fingerprint', idempotency.fingerprint, 'job', jobs[1].id,
    'expires_at', tonumber(now) + tonumber(idempotency.ttl))
  redis.call('PEXPIRE', idempotency.key, idempotency.ttl)
end
if schedule then
  redis.call('HSET', schedule.key, 'last_tick_at', schedule.tick, 'last_job_id', jobs[1].id)
  redis.call('HSET', job_key(jobs[1].id), 'schedule', schedule.name,
    'schedule_tick', schedule.tick)
end
if debounce then
  redis.call('HSET', debounce.key, 'job', jobs[1].id, 'first_at', now)
  redis.call('PEXPIRE', debounce.key,
    math.max((tonumber(jobs[1].scheduled_for) or tonumber(now)) - tonumber(now), 0) + 60000)
end
return replies
