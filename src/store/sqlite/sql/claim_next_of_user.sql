-- Claim by a built-in worker, within a user: priority first, then first
-- in, first out, skipping jobs whose type or key is at a limit
-- (:blocked_types, :blocked_keys: JSON arrays of types and of
-- type\x1fkey scopes, '[]' without limits); remote jobs are not its to
-- take.
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
      AND job_type NOT IN (SELECT value FROM json_each(:blocked_types))
      AND (concurrency_key IS NULL
           OR job_type || char(31) || concurrency_key
              NOT IN (SELECT value FROM json_each(:blocked_keys)))
    ORDER BY priority DESC, queued_at, id
    LIMIT 1
)
RETURNING *;
