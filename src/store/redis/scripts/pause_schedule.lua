-- pause_schedule: pauses or resumes a schedule; a resumed one is active
-- from now, so it owes nothing for the ticks it was paused over.
-- KEYS[1] prefix
-- ARGV name, paused ('1' or '0'), now
-- Returns the hash's fields and values (empty: no such schedule).
local key, paused, now = P .. 'schedule:' .. ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', key) == 0 then return {} end
if redis.call('HGET', key, 'paused') ~= paused then
  redis.call('HSET', key, 'paused', paused, 'updated_at', now)
  redis.call('HINCRBY', key, 'revision', 1)
  if paused == '0' then redis.call('HSET', key, 'active_since', now) end
end
return redis.call('HGETALL', key)
