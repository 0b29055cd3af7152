INSERT INTO workers (worker_id, host, pid, started_at, concurrency, last_heartbeat)
VALUES (:worker_id, :host, :pid, :started_at, :concurrency, :now)
ON CONFLICT (worker_id) DO UPDATE SET last_heartbeat = :now, concurrency = :concurrency;
