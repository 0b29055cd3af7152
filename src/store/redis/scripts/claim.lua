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
-- Counts kept locally and written once at the end: fewer commands per job.
local user_running = {}
local served = tonumber(redis.call('GET', P .. 'served_seq') or '0')
while free > 0 do
  local progress = false
  -- Bounded: users at their limit are skipped, so a claim looks at no more
  -- than this many per round.
  local users = redis.call('ZRANGE', P .. 'ready', 0, 999)
  for _, user in ipairs(users) do
    if free == 0 then break end
    if not user_running[user] then
      user_running[user] = {tonumber(redis.call('HGET', P .. 'user_running', user) or '0'), 0}
    end
    local counts = user_running[user]
    if counts[1] + counts[2] < per_user_max then
      local top = redis.call('ZPOPMIN', pending_key(user))
      if #top > 0 then
        local id = string.sub(top[1], 18)
        local key = job_key(id)
        local token = ARGV[6 + #claimed + 1]
        local f = redis.call('HMGET', key, 'attempts', 'revision')
        redis.call('HSET', key, 'status', 'running', 'started_at', now, 'updated_at', now,
          'worker_id', worker, 'claim_token', token, 'lease_expires_at', lease_until,
          'attempts', tonumber(f[1] or '0') + 1, 'revision', tonumber(f[2] or '0') + 1)
        redis.call('HDEL', key, 'completed_at', 'error')
        redis.call('ZADD', P .. 'running', lease_until, id)
        counts[2] = counts[2] + 1
        changed(id)
        claimed[#claimed + 1] = redis.call('HGETALL', key)
        free = free - 1
        progress = true
        -- To the back of the rotation; a user whose queue turns out empty
        -- leaves it on the next visit.
        served = served + 1
        redis.call('ZADD', P .. 'ready', served, user)
      else
        redis.call('ZREM', P .. 'ready', user)
      end
    end
  end
  if not progress then break end
end
if #claimed > 0 then
  count('pending', -#claimed)
  count('running', #claimed)
  redis.call('SET', P .. 'served_seq', served)
  for user, counts in pairs(user_running) do
    if counts[2] > 0 then
      redis.call('HINCRBY', P .. 'user_running', user, counts[2])
    end
  end
end
return claimed
