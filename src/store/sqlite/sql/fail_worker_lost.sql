-- A job that lost its worker too often fails, so it cannot loop forever.
UPDATE jobs SET
    status = 'failed',
    interruptions = interruptions + 1,
    error = :error,
    completed_at = :now,
    worker_id = NULL,
    claim_token = NULL,
    lease_expires_at = NULL,
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status = 'running' AND lease_expires_at < :now
RETURNING *;
