-- Jobs past their deadline that never started are cancelled as expired
-- (the dependency triggers cancel their waiting dependents), by the
-- expiry index.
UPDATE jobs INDEXED BY jobs_expiring SET
    status = 'cancelled',
    error = 'expired',
    completed_at = :now,
    updated_at = :now,
    revision = revision + 1
WHERE expires_at IS NOT NULL AND status IN ('pending', 'scheduled')
  AND expires_at <= :now AND started_at IS NULL
RETURNING *;
