-- Restart a failed or cancelled job: back to pending, everything of its
-- previous runs reset, parameters replaced when given.
UPDATE jobs SET
    status = 'pending',
    parameters = COALESCE(:parameters, parameters),
    result = NULL,
    error = NULL,
    progress = 0,
    items_processed = NULL,
    total_items = NULL,
    attempts = 0,
    interruptions = 0,
    scheduled_for = NULL,
    started_at = NULL,
    completed_at = NULL,
    queued_at = :now,
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status IN ('failed', 'cancelled')
RETURNING *;
