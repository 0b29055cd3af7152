-- The earliest deadline of a job that may still expire, by the expiry index.
SELECT expires_at FROM jobs INDEXED BY jobs_expiring
WHERE expires_at IS NOT NULL AND status IN ('pending', 'scheduled') AND started_at IS NULL
ORDER BY expires_at
LIMIT 1;
