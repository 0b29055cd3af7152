-- The leases of a worker known to be dead end now, so recovery takes its
-- jobs at once instead of when their leases run out.
UPDATE jobs SET lease_expires_at = 0
WHERE status = 'running' AND worker_id = :worker_id;
