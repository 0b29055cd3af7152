-- Running jobs whose worker stopped renewing the lease.
SELECT id, interruptions FROM jobs
WHERE status = 'running' AND lease_expires_at < :now
LIMIT 1000;
