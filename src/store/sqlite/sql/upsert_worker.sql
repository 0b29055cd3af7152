INSERT INTO workers (worker_id, host, pid, started_at, concurrency, last_heartbeat, serves)
VALUES (:worker_id, :host, :pid, :started_at, :concurrency, :now, :serves)
ON CONFLICT (worker_id) DO UPDATE SET
    last_heartbeat = :now, concurrency = :concurrency, serves = :serves;
