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
--      concurrency key ('' for none), dependency count, the dependencies; then, for an idempotent call of
--      one job: the key, its fingerprint, its lifetime in ms
-- Returns per job {status, waiting_dependencies, cancelled_by or '',
-- error or ''}; or {'missing', id} when a dependency does not exist, or
-- {'exists', id} when a job id is taken; or {'quota', user, quota} when
-- the call would leave a user with more queued (pending or scheduled) jobs
-- than the quota; or, for an idempotent call whose key holds a job of the
-- same user still stored, {'existing', id} (same fingerprint) or
-- {'mismatch', id} (another), storing nothing.
local now = ARGV[1]
local jobs, in_call = {}, {}
local i = 4
for j = 1, tonumber(ARGV[2]) do
  local ndeps = tonumber(ARGV[i + 10])
  local job = {
    id = ARGV[i], job_type = ARGV[i + 1], user = ARGV[i + 2], priority = ARGV[i + 3],
    parameters = ARGV[i + 4], max_attempts = ARGV[i + 5], timeout = ARGV[i + 6],
    scheduled_for = ARGV[i + 7], remote = ARGV[i + 8], concurrency_key = ARGV[i + 9], deps = {},
  }
  for d = 1, ndeps do
    local dep = ARGV[i + 10 + d]
    if not in_call[dep] and redis.call('EXISTS', job_key(dep)) == 0 then
      return {'missing', dep}
    end
    job.deps[d] = dep
  end
  if in_call[job.id] or redis.call('EXISTS', job_key(job.id)) == 1 then
    return {'exists', job.id}
  end
  in_call[job.id] = true
  jobs[j] = job
  i = i + 11 + ndeps
end

-- The idempotency key: one hash per user and key, expiring with the key.
local idempotency = ARGV[i] and {
  key = P .. 'idem:' .. redis.sha1hex(jobs[1].user .. '\n' .. ARGV[i]),
  fingerprint = ARGV[i + 1], ttl = ARGV[i + 2],
}
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

-- Stores one checked job; returns its reply.
local function store(job)
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
  local key = job_key(id)
  redis.call('HSET', key, 'id', id, 'job_type', job.job_type, 'user_id', job.user,
    'status', status, 'priority', job.priority, 'parameters', job.parameters,
    'max_attempts', job.max_attempts, 'attempts', 0, 'interruptions', 0, 'progress', 0,
    'created_at', now, 'updated_at', now, 'revision', 1, 'waiting_dependencies', waiting)
  if job.timeout ~= '' then redis.call('HSET', key, 'timeout_seconds', job.timeout) end
  if job.scheduled_for ~= '' then redis.call('HSET', key, 'scheduled_for', job.scheduled_for) end
  -- Kept only for a remote job: a built-in job's hash stays as it was.
  if job.remote == '1' then redis.call('HSET', key, 'remote', '1') end
  if job.concurrency_key ~= '' then redis.call('HSET', key, 'concurrency_key', job.concurrency_key) end
  if #job.deps > 0 then
    redis.call('HSET', key, 'depends_on', table.concat(job.deps, ','))
    for _, dep in ipairs(job.deps) do
      redis.call('SADD', dependents_key(dep), id)
      redis.call('HSET', job_key(dep), 'has_dependents', 1)
    end
  end
  redis.call('ZADD', P .. 'jobs', 0, id)
  count(status, 1)
  if status == 'cancelled' then
    redis.call('HSET', key, 'cancelled_by', cancelled_by, 'error', reason, 'completed_at', now)
    retain(id, 'cancelled', now)
  elseif status == 'scheduled' then
    count_scheduled(job.user, 1)
    if waiting == 0 then
      redis.call('ZADD', P .. 'scheduled', job.scheduled_for, id)
    end
  else
    enqueue(id, queue_of(job.remote, job.job_type), job.user, tonumber(job.priority), now)
  end
  return {status, waiting, cancelled_by, reason}
end

local replies, queued = {}, false
for j, job in ipairs(jobs) do
  replies[j] = store(job)
  queued = queued or replies[j][1] == 'pending'
end
-- One wake-up for the call, not one per job: every process hears it.
if queued then wake_workers() end
if idempotency then
  redis.call('HSET', idempotency.key, 'fingerprint', idempotency.fingerprint, 'job', jobs[1].id,
    'expires_at', tonumber(now) + tonumber(idempotency.ttl))
  redis.call('PEXPIRE', idempotency.key, idempotency.ttl)
end
return replies
