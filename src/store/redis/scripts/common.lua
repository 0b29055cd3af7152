-- Helpers prepended to every jobd script. Each script gets the key prefix
-- (which carries the hash tag, e.g. "{jobd}:") as KEYS[1] and derives every
-- other key from it, so all of a deployment's keys share one Cluster slot.
-- Times are milliseconds since the epoch, passed in by the caller.
local P = KEYS[1]

local function job_key(id) return P .. 'job:' .. id end
-- A job's log (append_log.lua) and its last line number and size.
local function log_key(id) return P .. 'log:' .. id end
local function log_meta_key(id) return P .. 'log_meta:' .. id end

-- Queues. Built-in jobs queue under `pending:<user>`, users take turns in
-- `ready` and `idle_served`; a remote job of type T under
-- `pending@T:<user>`, `ready@T` and `idle_served@T`, so a claim reads only
-- the queues of the jobs its worker serves. A queue is named by its suffix
-- `q`: '' for the built-in queues, '@T' for remote type T.
local function queue_of(remote, job_type)
  if remote == '1' then return '@' .. job_type end
  return ''
end
local function pending_key(q, user) return P .. 'pending' .. q .. ':' .. user end
local function ready_key(q) return P .. 'ready' .. q end
local function idle_served_key(q) return P .. 'idle_served' .. q end

-- Moves `n` jobs into or out of a status count (the O(1) stats).
local function count(status, n)
  redis.call('HINCRBY', P .. 'counts', status, n)
end

-- Moves `n` of `user`'s jobs into or out of status scheduled. With the
-- sizes of the user's pending queues, `user_scheduled` gives the user's
-- queued jobs for the quota ([`queued_of`]) without a command on the claim
-- path; a field is deleted at 0.
local function count_scheduled(user, n)
  if redis.call('HINCRBY', P .. 'user_scheduled', user, n) <= 0 then
    redis.call('HDEL', P .. 'user_scheduled', user)
  end
end

-- Tallies `n` jobs that left terminal `status` (deleted by cleanup,
-- restarted): `counts` plus `retired` is how many ever ended so, which
-- never goes down (the finished totals).
local function retire(status, n)
  redis.call('HINCRBY', P .. 'retired', status, n)
end

-- Whether some process watches job `id` (a long-poll, a stream). One
-- EXISTS per script call spares a lookup per job while nobody watches.
local anyone_watching
local function is_watched(id)
  if anyone_watching == nil then
    anyone_watching = redis.call('EXISTS', P .. 'watched') == 1
  end
  return anyone_watching and redis.call('ZSCORE', P .. 'watched', id) ~= false
end

-- Tells other processes that a job changed, if one of them watches it;
-- `always` for changes that must reach the worker running the job
-- (cancel).
local function changed(id, always)
  if always or is_watched(id) then
    redis.call('PUBLISH', P .. 'changes', id)
  end
end

-- Runs `command key ...` with `args` in bounded chunks: one call for many
-- members, within Lua's unpack limit. Chunks are even, so score/member
-- pairs stay together.
local function call_chunked(command, key, args)
  for i = 1, #args, 1000 do
    redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
  end
end

-- Wakes idle workers: a job became claimable.
local function wake_workers()
  redis.call('PUBLISH', P .. 'work', '')
end

-- Puts a user with pending jobs into queue q's rotation, at the place it
-- had when its queue last ran empty, so an idle spell does not move it
-- ahead of users who were served less recently (a new user comes first).
-- A remote type's queue suffix is listed in `remote_queues` for cleanup.
local function join_rotation(q, user)
  if not redis.call('ZSCORE', ready_key(q), user) then
    local served = redis.call('HGET', idle_served_key(q), user)
    if served then redis.call('HDEL', idle_served_key(q), user) end
    redis.call('ZADD', ready_key(q), served or 0, user)
    if q ~= '' then redis.call('SADD', P .. 'remote_queues', q) end
  end
end

-- Takes a user whose queue ran empty out of queue q's rotation,
-- remembering its place for when it queues again.
local function leave_rotation(q, user)
  local served = redis.call('ZSCORE', ready_key(q), user)
  if served then
    redis.call('HSET', idle_served_key(q), user, served)
    redis.call('ZREM', ready_key(q), user)
  end
end

-- Puts a pending job in its user's queue q at its place: score -priority,
-- then the time it became claimable (`queued_at`: now, or the due time of a
-- scheduled job, so a job due earlier is claimed earlier however late it
-- was promoted), then the queue sequence (members sort by both within a
-- score). Makes sure the user is in the round-robin rotation (new users go
-- first).
local function queue_member(queued_at, seq, id)
  return string.format('%015d%016d', tonumber(queued_at), seq) .. ':' .. id
end
local function enqueue(id, q, user, priority, queued_at)
  local seq = redis.call('INCR', P .. 'queue_seq')
  local member = queue_member(queued_at, seq, id)
  redis.call('ZADD', pending_key(q, user), -priority, member)
  redis.call('HSET', job_key(id), 'queue_member', member)
  join_rotation(q, user)
end

-- Puts a claimed job back where it was in its user's queue q: its queue
-- member (kept in the job since it was enqueued; `member` if the caller
-- read it) orders it before every job enqueued after it.
local function requeue_in_place(id, q, user, priority, now, member)
  member = member or redis.call('HGET', job_key(id), 'queue_member')
  if not member then
    return enqueue(id, q, user, priority, now)
  end
  redis.call('ZADD', pending_key(q, user), -priority, member)
  join_rotation(q, user)
end

-- A user's queued jobs (the quota's count): scheduled, parked (see
-- `unpark`), plus pending in the built-in queue and in each remote type's queue (every remote type with a
-- pending job is in `remote_queues`).
local function queued_of(user)
  local n = tonumber(redis.call('HGET', P .. 'user_scheduled', user) or '0')
    + tonumber(redis.call('HGET', P .. 'user_parked', user) or '0')
    + redis.call('ZCARD', pending_key('', user))
  for _, q in ipairs(redis.call('SMEMBERS', P .. 'remote_queues')) do
    n = n + redis.call('ZCARD', pending_key(q, user))
  end
  return n
end

-- Takes a pending job out of its user's queue q.
local function dequeue(id, q, user)
  local member = redis.call('HGET', job_key(id), 'queue_member')
  if member then
    redis.call('ZREM', pending_key(q, user), member)
    redis.call('HDEL', job_key(id), 'queue_member')
  end
  if redis.call('ZCARD', pending_key(q, user)) == 0 then
    leave_rotation(q, user)
  end
end

-- Releases a running job's slot (global and per user) and its lease.
local function stop_running(id, user)
  redis.call('ZREM', P .. 'running', id)
  if redis.call('HINCRBY', P .. 'user_running', user, -1) <= 0 then
    redis.call('HDEL', P .. 'user_running', user)
  end
end

-- Indexes a terminal job for retention cleanup.
local function retain(id, status, at)
  if status == 'completed' then
    redis.call('ZADD', P .. 'done:completed', at, id)
  else
    redis.call('ZADD', P .. 'done:failed', at, id)
  end
end

-- Sets fields of a job and bumps its revision.
local function update(id, now, ...)
  local key = job_key(id)
  redis.call('HSET', key, 'updated_at', now, ...)
  redis.call('HINCRBY', key, 'revision', 1)
end

-- The id in a queue member (`<queued_at><seq>:<id>`, or the older
-- `<seq>:<id>`): what follows the first ':'. A plain find, not a pattern:
-- this runs once per claimed job.
local function queued_id(member)
  return string.sub(member, string.find(member, ':', 1, true) + 1)
end

-- Makes up to `limit` due scheduled jobs pending, each queued at its due
-- time. Returns their ids.
local function promote_due(now, limit)
  local due = redis.call('ZRANGEBYSCORE', P .. 'scheduled', '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  local promoted = {}
  for i = 1, #due, 2 do
    local id, due_at = due[i], due[i + 1]
    local fields = redis.call('HMGET', job_key(id), 'user_id', 'priority', 'remote', 'job_type')
    redis.call('ZREM', P .. 'scheduled', id)
    if fields[1] then
      update(id, now, 'status', 'pending')
      count('scheduled', -1)
      count('pending', 1)
      count_scheduled(fields[1], -1)
      enqueue(id, queue_of(fields[3], fields[4]), fields[1], tonumber(fields[2]), due_at)
      changed(id)
      promoted[#promoted + 1] = id
    end
  end
  if #promoted > 0 then
    wake_workers()
  end
  return promoted
end

-- Dependencies. `dependents:<id>` holds the jobs waiting for job <id>; a
-- waiting job is 'scheduled' with waiting_dependencies > 0 and sits in no
-- queue until the count reaches 0.
local function dependents_key(id) return P .. 'dependents:' .. id end

-- Makes a job whose dependencies are all complete runnable: pending, or
-- scheduled for its own time.
local function dependencies_done(id, now)
  local f = redis.call('HMGET', job_key(id), 'scheduled_for', 'user_id', 'priority', 'remote',
    'job_type')
  if f[1] and tonumber(f[1]) > tonumber(now) then
    redis.call('ZADD', P .. 'scheduled', f[1], id)
  else
    update(id, now, 'status', 'pending')
    count('scheduled', -1)
    count('pending', 1)
    count_scheduled(f[2], -1)
    enqueue(id, queue_of(f[4], f[5]), f[2], tonumber(f[3]), now)
    wake_workers()
  end
end

-- Job `id` completed: its waiting dependents wait for one fewer.
local function release_dependents(id, now)
  for _, dep in ipairs(redis.call('SMEMBERS', dependents_key(id))) do
    local f = redis.call('HMGET', job_key(dep), 'status', 'waiting_dependencies')
    if f[1] == 'scheduled' and tonumber(f[2] or '0') > 0 then
      update(dep, now)
      if redis.call('HINCRBY', job_key(dep), 'waiting_dependencies', -1) == 0 then
        dependencies_done(dep, now)
      end
      changed(dep)
    end
  end
end

-- Job `id` failed or was cancelled: its waiting dependents are cancelled,
-- naming it, and theirs in turn.
local function cancel_dependents(id, status, now)
  local todo = {{id, status}}
  while #todo > 0 do
    local cur, how = unpack(table.remove(todo))
    local reason = 'dependency ' .. cur .. (how == 'failed' and ' failed' or ' was cancelled')
    for _, dep in ipairs(redis.call('SMEMBERS', dependents_key(cur))) do
      local f = redis.call('HMGET', job_key(dep), 'status', 'user_id')
      if f[1] == 'scheduled' then
        redis.call('ZREM', P .. 'scheduled', dep)
        update(dep, now, 'status', 'cancelled', 'cancelled_by', cur, 'error', reason, 'completed_at', now)
        count('scheduled', -1)
        count('cancelled', 1)
        count_scheduled(f[2], -1)
        retain(dep, 'cancelled', now)
        changed(dep, true)
        todo[#todo + 1] = {dep, 'cancelled'}
      end
    end
  end
end

-- How many of a job's dependencies have not completed.
local function unfinished_dependencies(id)
  local list = redis.call('HGET', job_key(id), 'depends_on')
  local n = 0
  if list then
    for dep in string.gmatch(list, '[^,]+') do
      if redis.call('HGET', job_key(dep), 'status') ~= 'completed' then n = n + 1 end
    end
  end
  return n
end

-- Job `id` was restarted: the dependents it cancelled wait again, and
-- theirs in turn.
local function revive_dependents(id, now)
  local todo = {id}
  while #todo > 0 do
    local cur = table.remove(todo)
    for _, dep in ipairs(redis.call('SMEMBERS', dependents_key(cur))) do
      local f = redis.call('HMGET', job_key(dep), 'status', 'cancelled_by', 'user_id')
      if f[1] == 'cancelled' and f[2] == cur then
        redis.call('ZREM', P .. 'done:failed', dep)
        redis.call('HDEL', job_key(dep), 'cancelled_by', 'error', 'completed_at')
        update(dep, now, 'status', 'scheduled', 'waiting_dependencies', unfinished_dependencies(dep))
        count('cancelled', -1)
        retire('cancelled', 1)
        count('scheduled', 1)
        count_scheduled(f[3], 1)
        changed(dep)
        todo[#todo + 1] = dep
      end
    end
  end
end

-- Limits per job type (claim_jobs.lua). A job claimed under its type's
-- limits holds slots, named in its hash: `type_slot` (its type, counted in
-- `type_running`) and `key_slot` (type, \31, key: counted in
-- `key_running`). A pending job the claim found over a limit waits,
-- still pending, in the zset `parked:<scope>` (scope `type:<T>`,
-- `key:<T>\31<K>` or `rate:<T>[\31<K>]`; its hash's `parked` names it;
-- scored and named as in its user's queue) instead of its user's queue,
-- so the jobs behind it are claimed; `user_parked` counts them per user
-- for the quota, and `parked_count` per scope, so that a stop reads
-- whether any of the scopes it frees has parked jobs in one command for
-- all of them (most have none). A stop gives one parked job of each scope
-- it frees back; a rate scope's jobs come back when its window opens
-- (the look, `parked_check` in claim_jobs.lua).
local function parked_key(scope) return P .. 'parked:' .. scope end

-- HMGET of `fields` of hash `key`, in chunks (Lua's unpack limit).
local function hmget_chunked(key, fields)
  local values = {}
  for i = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + 999, #fields)))
    for j = 1, #part do values[i + j - 1] = part[j] end
  end
  return values
end

-- Moves `scope`'s count in `parked_count` by `n` (a field is deleted at 0).
local function count_parked(scope, n)
  if redis.call('HINCRBY', P .. 'parked_count', scope, n) <= 0 then
    redis.call('HDEL', P .. 'parked_count', scope)
  end
end

-- Puts up to `n` jobs parked on `scope` back in their users' queues, at
-- their places. Returns how many it took out of the parked set; the
-- caller keeps `parked_count` and wakes the workers.
local function unpark(scope, n, now)
  local top = redis.call('ZPOPMIN', parked_key(scope), n)
  for i = 1, #top, 2 do
    local id = queued_id(top[i])
    local f = redis.call('HMGET', job_key(id), 'status', 'user_id', 'priority', 'remote',
      'job_type', 'parked', 'queue_member')
    if f[1] == 'pending' and f[6] == scope then
      redis.call('HDEL', job_key(id), 'parked')
      if redis.call('HINCRBY', P .. 'user_parked', f[2], -1) <= 0 then
        redis.call('HDEL', P .. 'user_parked', f[2])
      end
      requeue_in_place(id, queue_of(f[4], f[5]), f[2], tonumber(f[3]), now, f[7])
    end
  end
  return #top / 2
end

-- Takes a parked job (its hash's `parked` names the scope) out of its
-- parked set.
local function unpark_one(id, scope, user)
  local member = redis.call('HGET', job_key(id), 'queue_member')
  if member and redis.call('ZREM', parked_key(scope), member) == 1 then
    count_parked(scope, -1)
  end
  redis.call('HDEL', job_key(id), 'parked')
  if redis.call('HINCRBY', P .. 'user_parked', user, -1) <= 0 then
    redis.call('HDEL', P .. 'user_parked', user)
  end
end

-- Lets back, of each scope in `scopes`, as many parked jobs as the
-- matching `counts` says slots were freed: one read of `parked_count` for
-- all, a pop only where jobs are parked.
local function unpark_freed(scopes, counts, now)
  if #scopes == 0 then return end
  local parked = hmget_chunked(P .. 'parked_count', scopes)
  local set, del, woke = {}, {}, false
  for i, scope in ipairs(scopes) do
    local had = tonumber(parked[i] or '0')
    if had > 0 then
      local popped = unpark(scope, counts[i], now)
      woke = woke or popped > 0
      -- Fewer than asked: the set is empty, whatever the count said.
      local left = popped < counts[i] and 0 or math.max(had - popped, 0)
      if left > 0 then
        set[#set + 1] = scope
        set[#set + 1] = left
      else
        del[#del + 1] = scope
      end
    end
  end
  if #set > 0 then call_chunked('HSET', P .. 'parked_count', set) end
  if #del > 0 then call_chunked('HDEL', P .. 'parked_count', del) end
  if woke then wake_workers() end
end

-- Frees limit slots of jobs that stopped running: `freed` maps
-- 'type_running' and 'key_running' each to {slot = slots freed}. The
-- counts are read in one command per hash and written in at most two
-- (a count at 0 is deleted); then as many parked jobs of each scope come
-- back. Nothing freed: no command.
local function free_slot_counts(freed, now)
  local scopes, counts = {}, {}
  for _, running in ipairs({'type_running', 'key_running'}) do
    local slots, ns = {}, {}
    for slot, n in pairs(freed[running] or {}) do
      slots[#slots + 1] = slot
      ns[#ns + 1] = n
    end
    if #slots > 0 then
      local prefix = running == 'type_running' and 'type:' or 'key:'
      local was = hmget_chunked(P .. running, slots)
      local set, del = {}, {}
      for i, slot in ipairs(slots) do
        local left = tonumber(was[i] or '0') - ns[i]
        if left > 0 then
          set[#set + 1] = slot
          set[#set + 1] = left
        else
          del[#del + 1] = slot
        end
        scopes[#scopes + 1] = prefix .. slot
        counts[#counts + 1] = ns[i]
      end
      if #set > 0 then call_chunked('HSET', P .. running, set) end
      if #del > 0 then call_chunked('HDEL', P .. running, del) end
    end
  end
  unpark_freed(scopes, counts, now)
end

-- Frees the limit slots a job that stopped running held (its
-- `type_slot` and `key_slot`, if any) and lets one parked job of each
-- scope back. Jobs without limits pass nothing: no command.
local function free_slots(id, type_slot, key_slot, now)
  if not type_slot and not key_slot then return end
  local freed = {type_running = {}, key_running = {}}
  if type_slot then freed.type_running[type_slot] = 1 end
  if key_slot then freed.key_running[key_slot] = 1 end
  free_slot_counts(freed, now)
  redis.call('HDEL', job_key(id), 'type_slot', 'key_slot')
end

-- A pending job left its queue without running (cancelled): if it was
-- parked, it leaves its parked set; else it may have been the one a stop
-- let back for its scopes, so one parked job of each takes its turn.
local function pending_left(id, user, job_type, key, parked, now)
  if parked then
    unpark_one(id, parked, user)
    return
  end
  local scopes = {'type:' .. job_type}
  if key then scopes[2] = 'key:' .. job_type .. '\31' .. key end
  unpark_freed(scopes, {1, 1}, now)
end

-- Expiry. `expiring` holds jobs with a deadline to start by, scored by it.
-- Cancels, with the error 'expired', up to `limit` jobs past their
-- deadline that are still pending or scheduled and never started; their
-- waiting dependents follow. Entries of jobs that started, ended or are
-- gone are dropped as their deadline passes. Returns the expired ids.
local function expire_due(now, limit)
  local due = redis.call('ZRANGEBYSCORE', P .. 'expiring', '-inf', now, 'LIMIT', 0, limit)
  local expired = {}
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'expiring', id)
    local f = redis.call('HMGET', job_key(id), 'status', 'user_id', 'remote', 'job_type',
      'started_at', 'concurrency_key', 'parked')
    if (f[1] == 'pending' or f[1] == 'scheduled') and not f[5] then
      if f[1] == 'pending' then
        -- As cancel.lua: out of its parked set before dequeue forgets
        -- the queue member it is filed under.
        pending_left(id, f[2], f[4], f[6] or nil, f[7] or nil, now)
        dequeue(id, queue_of(f[3], f[4]), f[2])
      else
        redis.call('ZREM', P .. 'scheduled', id)
        count_scheduled(f[2], -1)
      end
      update(id, now, 'status', 'cancelled', 'error', 'expired', 'completed_at', now)
      count(f[1], -1)
      count('cancelled', 1)
      retain(id, 'cancelled', now)
      changed(id, true)
      cancel_dependents(id, 'cancelled', now)
      expired[#expired + 1] = id
    end
  end
  return expired
end
