-- release: gives claimed jobs back to the front of their users' queues
-- (a remote job to its type's)
-- (their place when claimed: the queue member they had) without spending
-- an attempt (graceful shutdown). Claims no longer held are skipped.
-- KEYS[1] prefix
-- ARGV now, then pairs of job id and claim token
-- Returns how many jobs were released.
local now = ARGV[1]
local released = 0
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = job_key(id)
  local fields = redis.call('HMGET', key, 'status', 'claim_token', 'user_id', 'priority', 'remote',
    'job_type', 'type_slot', 'key_slot')
  if fields[1] == 'running' and fields[2] == token then
    stop_running(id, fields[3])
    free_slots(id, fields[7] or nil, fields[8] or nil, now)
    update(id, now, 'status', 'pending', 'progress', 0)
    redis.call('HINCRBY', key, 'attempts', -1)
    redis.call('HDEL', key, 'worker_id', 'claim_token', 'started_at',
      'items_processed', 'total_items')
    count('running', -1)
    count('pending', 1)
    requeue_in_place(id, queue_of(fields[5], fields[6]), fields[3], tonumber(fields[4]), now)
    changed(id)
    released = released + 1
  end
end
if released > 0 then wake_workers() end
return released
