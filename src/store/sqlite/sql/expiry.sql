-- Schema (expiry): a job's deadline to start by. A job still pending or
-- scheduled at it, never started, is cancelled with the error 'expired'
-- (its dependents follow by the dependency triggers).
ALTER TABLE jobs ADD COLUMN expires_at INTEGER;
CREATE INDEX jobs_expiring ON jobs (expires_at)
WHERE expires_at IS NOT NULL AND status IN ('pending', 'scheduled');
