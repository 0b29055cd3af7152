-- cancel: cancels a job that is not terminal; a running job loses its claim,
-- so its worker's late result is discarded, and the worker is told.
-- KEYS[1] prefix
-- ARGV id, now
-- Returns {'ok', job...} | {'not_found'} | {'conflict', status}.
local id, now = ARGV[1], ARGV[2]
local key = job_key(id)
local fields = redis.call('HMGET', key, 'status', 'user_id', 'remote', 'job_type', 'concurrency_key',
  'parked', 'type_slot', 'key_slot')
local status, user = fields[1], fields[2]
if not status then
  return {'not_found'}
end
if status == 'pending' then
  -- Before dequeue, which forgets the queue member a parked job is
  -- filed under.
  pending_left(id, user, fields[4], fields[5] or nil, fields[6] or nil, now)
  dequeue(id, queue_of(fields[3], fields[4]), user)
elseif status == 'running' then
  stop_running(id, user)
  free_slots(id, fields[7] or nil, fields[8] or nil, now)
  redis.call('HDEL', key, 'worker_id', 'claim_token')
elseif status == 'scheduled' then
  redis.call('ZREM', P .. 'scheduled', id)
  count_scheduled(user, -1)
else
  return {'conflict', status}
end
update(id, now, 'status', 'cancelled', 'completed_at', now)
count(status, -1)
count('cancelled', 1)
retain(id, 'cancelled', now)
changed(id, true)
cancel_dependents(id, 'cancelled', now)
local job = redis.call('HGETALL', key)
table.insert(job, 1, 'ok')
return job
