-- Graceful shutdown: a claimed job goes back to the front of its user's
-- queue, its attempt given back.
UPDATE jobs SET
    status = 'pending',
    attempts = MAX(attempts - 1, 0),
    progress = 0,
    items_processed = NULL,
    total_items = NULL,
    started_at = NULL,
    worker_id = NULL,
    claim_token = NULL,
    lease_expires_at = NULL,
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status = 'running' AND claim_token = :token
RETURNING *;
