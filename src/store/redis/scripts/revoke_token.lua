-- Revokes the token ARGV[1] at ARGV[2] (ms), keeping an earlier revocation's
-- time; returns the token's fields, or nil when there is no such token.
local key = KEYS[1] .. 'token:' .. ARGV[1]
if redis.call('EXISTS', key) == 0 then
    return nil
end
redis.call('HSETNX', key, 'revoked_at', ARGV[2])
return redis.call('HGETALL', key)
