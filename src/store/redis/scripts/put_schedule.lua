-- put_schedule: stores a schedule (a hash `schedule:<name>`, its name in
-- the `schedules` set): a new one, active from now; or, when replacing, a
-- new definition and origin for a stored one, its pause and ticks kept and
-- its revision bumped only if something changed.
-- KEYS[1] prefix
-- ARGV name, definition (JSON), origin, replace ('1' or ''), now
-- Returns {created (1 or 0), the hash's fields and values...}.
local name, definition, origin, now = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local key = P .. 'schedule:' .. name
local created = 0
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'definition', definition, 'origin', origin, 'paused', '0',
    'revision', 1, 'created_at', now, 'active_since', now, 'updated_at', now)
  redis.call('SADD', P .. 'schedules', name)
  created = 1
elseif ARGV[4] == '1' then
  local held = redis.call('HMGET', key, 'definition', 'origin')
  if held[1] ~= definition or held[2] ~= origin then
    redis.call('HSET', key, 'definition', definition, 'origin', origin, 'updated_at', now)
    redis.call('HINCRBY', key, 'revision', 1)
  end
end
local reply = redis.call('HGETALL', key)
table.insert(reply, 1, created)
return reply
