-- watch: announces a job's changes to this process and reads it, in one
-- step: a job that does not exist is not registered (nothing would ever
-- remove the entry but the next cleanup pass), and no change can fall
-- between the registration and the read.
-- KEYS[1] prefix
-- ARGV id, expiry (when the registration lapses unless refreshed)
-- Returns the job's fields and values (HGETALL), empty when there is none.
local id, expiry = ARGV[1], ARGV[2]
local job = redis.call('HGETALL', job_key(id))
if #job > 0 then
  redis.call('ZADD', P .. 'watched', expiry, id)
end
return job
