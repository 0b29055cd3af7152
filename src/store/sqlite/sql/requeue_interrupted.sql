-- A lost worker's job goes back to pending; the attempt is given back since
-- the crash was not the job's fault.
UPDATE jobs SET
    status = 'pending',
    attempts = MAX(attempts - 1, 0),
    interruptions = interruptions + 1,
    progress = 0,
    items_processed = NULL,
    total_items = NULL,
    queued_at = :now,
    worker_id = NULL,
    claim_token = NULL,
    lease_expires_at = NULL,
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status = 'running' AND lease_expires_at < :now
RETURNING *;
