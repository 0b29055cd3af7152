-- End of an attempt (completed, failed, or scheduled for a retry); only the
-- claim's holder may end it, so a cancelled or recovered job stays as it is.
UPDATE jobs SET
    status = :status,
    result = :result,
    error = :error,
    progress = CASE WHEN :status = 'completed' THEN 1.0 ELSE progress END,
    scheduled_for = :scheduled_for,
    completed_at = :completed_at,
    worker_id = NULL,
    claim_token = NULL,
    lease_expires_at = NULL,
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status = 'running' AND claim_token = :token
RETURNING *;
