-- recover: running jobs whose lease expired go back to pending (an
-- interruption: the attempt is given back), or fail as "worker lost" once
-- interrupted more than max_interruptions times; stale worker registrations
-- are removed. Workers known to be dead (then the ids of them) lose their
-- leases and registrations first, so their jobs are recovered at once.
-- KEYS[1] prefix
-- ARGV now, max_interruptions, stale_workers_before, dead worker ids...
-- Returns {requeued ids, failed ids, stale workers removed}.
local now, max_interruptions, stale_before = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local requeued, failed = {}, {}
if #ARGV > 3 then
  local dead = {}
  for i = 4, #ARGV do
    dead[ARGV[i]] = true
    redis.call('DEL', P .. 'worker:' .. ARGV[i])
    redis.call('ZREM', P .. 'workers', ARGV[i])
  end
  for _, id in ipairs(redis.call('ZRANGE', P .. 'running', 0, -1)) do
    if dead[redis.call('HGET', job_key(id), 'worker_id') or ''] then
      redis.call('ZADD', P .. 'running', 0, id)
    end
  end
end
local expired = redis.call('ZRANGEBYSCORE', P .. 'running', '-inf', '(' .. now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  local key = job_key(id)
  local fields = redis.call('HMGET', key, 'status', 'user_id', 'priority', 'interruptions', 'remote',
    'job_type', 'type_slot', 'key_slot')
  if fields[1] == 'running' then
    local interruptions = tonumber(fields[4] or '0')
    stop_running(id, fields[2])
    free_slots(id, fields[7] or nil, fields[8] or nil, now)
    redis.call('HDEL', key, 'worker_id', 'claim_token')
    redis.call('HINCRBY', key, 'interruptions', 1)
    count('running', -1)
    if interruptions >= max_interruptions then
      update(id, now, 'status', 'failed', 'completed_at', now, 'error',
        'worker lost: the job\'s worker stopped responding ' .. (interruptions + 1) .. ' times')
      count('failed', 1)
      retain(id, 'failed', now)
      cancel_dependents(id, 'failed', now)
      failed[#failed + 1] = id
    else
      update(id, now, 'status', 'pending', 'progress', 0)
      redis.call('HINCRBY', key, 'attempts', -1)
      redis.call('HDEL', key, 'items_processed', 'total_items')
      count('pending', 1)
      enqueue(id, queue_of(fields[5], fields[6]), fields[2], tonumber(fields[3]), now)
      requeued[#requeued + 1] = id
    end
    changed(id, true)
  end
end
if #requeued > 0 then wake_workers() end
local stale = redis.call('ZRANGEBYSCORE', P .. 'workers', '-inf', '(' .. stale_before)
for _, worker in ipairs(stale) do
  redis.call('DEL', P .. 'worker:' .. worker)
  redis.call('ZREM', P .. 'workers', worker)
end
return {requeued, failed, #stale}
