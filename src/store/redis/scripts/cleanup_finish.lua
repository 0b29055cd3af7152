-- cleanup_finish: the end of a cleanup pass: clears orphaned processing
-- locks (entries of the running set, older than the orphan age, whose job
-- is gone or no longer running), drops expired watch registrations and the
-- rotation places of idle users (built-in and remote), and
-- records the pass and gives up the pass's lock, only if it still holds it
-- (a pass that outlived the lock's expiry must not delete another node's).
-- KEYS[1] prefix
-- ARGV now, orphaned_before, lock token
-- Returns how many orphaned locks were cleared.
local now = ARGV[1]
local cleared = 0
local old = redis.call('ZRANGEBYSCORE', P .. 'running', '-inf', '(' .. ARGV[2], 'LIMIT', 0, 1000)
for _, id in ipairs(old) do
  if redis.call('HGET', job_key(id), 'status') ~= 'running' then
    redis.call('ZREM', P .. 'running', id)
    cleared = cleared + 1
  end
end
redis.call('ZREMRANGEBYSCORE', P .. 'watched', '-inf', '(' .. now)
-- Users with nothing queued or running are forgotten (as SQLite forgets
-- idle users): they come back as new users. Likewise in each remote
-- type's rotation, and a remote type whose rotation is empty is no
-- longer listed.
local function forget_idle(q)
  for _, user in ipairs(redis.call('HKEYS', idle_served_key(q))) do
    if redis.call('HEXISTS', P .. 'user_running', user) == 0 then
      redis.call('HDEL', idle_served_key(q), user)
    end
  end
end
forget_idle('')
for _, q in ipairs(redis.call('SMEMBERS', P .. 'remote_queues')) do
  forget_idle(q)
  if redis.call('EXISTS', ready_key(q), idle_served_key(q)) == 0 then
    redis.call('SREM', P .. 'remote_queues', q)
  end
end
redis.call('HSET', P .. 'meta', 'last_cleanup', now)
if redis.call('GET', P .. 'lock:cleanup') == ARGV[3] then
  redis.call('DEL', P .. 'lock:cleanup')
end
return cleared
