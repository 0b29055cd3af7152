-- heartbeat: registers or refreshes a worker and extends the lease of each
-- job it holds whose claim is still valid.
-- KEYS[1] prefix
-- ARGV worker_id, host, pid, started_at, concurrency, lease_until, now,
--      serves ('' for a built-in worker, else the JSON array of the remote
--      types it serves), then pairs of job id and claim token
-- Returns the ids of held jobs whose claim is gone.
local worker, lease_until, now = ARGV[1], ARGV[6], ARGV[7]
redis.call('HSET', P .. 'worker:' .. worker, 'worker_id', worker, 'host', ARGV[2], 'pid', ARGV[3],
  'started_at', ARGV[4], 'concurrency', ARGV[5], 'last_heartbeat', now, 'serves', ARGV[8])
redis.call('ZADD', P .. 'workers', now, worker)
local lost = {}
for i = 9, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local fields = redis.call('HMGET', job_key(id), 'status', 'claim_token')
  if fields[1] == 'running' and fields[2] == token then
    redis.call('ZADD', P .. 'running', 'XX', lease_until, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
