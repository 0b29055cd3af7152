SELECT w.worker_id, w.host, w.pid, w.started_at, w.concurrency, w.last_heartbeat, w.serves,
       (SELECT group_concat(j.id) FROM jobs j WHERE j.status = 'running' AND j.worker_id = w.worker_id)
FROM workers w
ORDER BY w.started_at;
