-- Cancel anything not terminal; a running job loses its claim, so the
-- worker's late result is discarded.
UPDATE jobs SET
    status = 'cancelled',
    error = COALESCE(:reason, error),
    completed_at = :now,
    worker_id = NULL,
    claim_token = NULL,
    lease_expires_at = NULL,
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status IN ('pending', 'running', 'scheduled')
RETURNING *;
