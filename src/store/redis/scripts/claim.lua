-- claim: moves up to max_jobs pending jobs to running for one worker, within
-- the global and per-user limits, serving users round-robin (least recently
-- served first) and, within a user, by priority then FIFO. Promotes due
-- scheduled jobs first.
-- KEYS[1] prefix
-- ARGV worker_id, max_jobs, global_max, per_user_max, lease_until, now,
--      then max_jobs claim tokens
-- Returns an array of claimed jobs, each a flat HGETALL array.
local worker, max_jobs = ARGV[1], tonumber(ARGV[2])
local global_max, per_user_max = tonumber(ARGV[3]), tonumber(ARGV[4])
local lease_until, now = ARGV[5], ARGV[6]

promote_due(now, 1000)
local free = math.min(max_jobs, global_max - redis.call('ZCARD', P .. 'running'))
local claimed = {}
while free > 0 do
  local progress = false
  -- Bounded: users at their limit are skipped, so a claim looks at no more
  -- than this many per round.
  local users = redis.call('ZRANGE', P .. 'ready', 0, 999)
  for _, user in ipairs(users) do
    if free == 0 then break end
    local running = tonumber(redis.call('HGET', P .. 'user_running', user) or '0')
    if running < per_user_max then
      local top = redis.call('ZPOPMIN', pending_key(user))
      if #top > 0 then
        local id = string.sub(top[1], 18)
        local key = job_key(id)
        local token = ARGV[6 + #claimed + 1]
        update(id, now, 'status', 'running', 'started_at', now, 'worker_id', worker,
          'claim_token', token, 'lease_expires_at', lease_until)
        redis.call('HDEL', key, 'completed_at', 'error', 'queue_member')
        redis.call('HINCRBY', key, 'attempts', 1)
        redis.call('ZADD', P .. 'running', lease_until, id)
        redis.call('HINCRBY', P .. 'user_running', user, 1)
        count('pending', -1)
        count('running', 1)
        changed(id)
        claimed[#claimed + 1] = redis.call('HGETALL', key)
        free = free - 1
        progress = true
        if redis.call('ZCARD', pending_key(user)) == 0 then
          redis.call('ZREM', P .. 'ready', user)
        else
          redis.call('ZADD', P .. 'ready', redis.call('INCR', P .. 'served_seq'), user)
        end
      else
        redis.call('ZREM', P .. 'ready', user)
      end
    end
  end
  if not progress then break end
end
return claimed
