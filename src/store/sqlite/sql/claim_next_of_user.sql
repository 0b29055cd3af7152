-- Claim by a built-in worker, within a user: priority first, then first
-- in, first out; remote jobs are not its to take.
UPDATE jobs SET
    status = 'running',
    attempts = attempts + 1,
    started_at = :now,
    completed_at = NULL,
    error = NULL,
    worker_id = :worker_id,
    claim_token = :token,
    lease_expires_at = :lease_until,
    updated_at = :now,
    revision = revision + 1
WHERE id = (
    SELECT id FROM jobs
    WHERE status = 'pending' AND remote = 0 AND user_id = :user_id
    ORDER BY priority DESC, queued_at, id
    LIMIT 1
)
RETURNING *;
