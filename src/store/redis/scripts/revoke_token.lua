-- Revokes the token ARGV[1] at ARGV[2] (ms), keeping an earlier revocation's
-- time; returns the token's fields, or nil when there is no such token.
local key = KEYS[1] .. 'token:' .. ARGV[1]
if redis.call('EXISTS', key) == 0 then
    return nil
end
redis.call('HSETNX', key, 'revoked_at', ARGV[2])
-- It stops working at the earlier of its revocation and its expiry.
redis.call('ZADD', KEYS[1] .. 'tokens_ending', 'LT', redis.call('HGET', key, 'revoked_at'), ARGV[1])
return redis.call('HGETALL', key)
