-- Deletes at most ARGV[2] tokens that stopped working (expired or revoked)
-- before ARGV[1] (ms): their hashes and index entries. Returns the count.
local ending = KEYS[1] .. 'tokens_ending'
local ids = redis.call('ZRANGEBYSCORE', ending, '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
    redis.call('DEL', KEYS[1] .. 'token:' .. id)
    redis.call('ZREM', KEYS[1] .. 'tokens', id)
    redis.call('ZREM', ending, id)
end
return #ids
