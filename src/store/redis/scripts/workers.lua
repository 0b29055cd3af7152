-- workers: the registry, with the jobs each worker holds.
-- KEYS[1] prefix
-- Returns an array of {worker fields (flat HGETALL), held job ids}.
local held = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'running', 0, -1)) do
  local worker = redis.call('HGET', job_key(id), 'worker_id')
  if worker then
    held[worker] = held[worker] or {}
    table.insert(held[worker], id)
  end
end
local out = {}
for _, worker in ipairs(redis.call('ZRANGE', P .. 'workers', 0, -1)) do
  local fields = redis.call('HGETALL', P .. 'worker:' .. worker)
  if #fields > 0 then
    out[#out + 1] = {fields, held[worker] or {}}
  end
end
return out
