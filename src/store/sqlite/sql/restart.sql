-- Restart a failed or cancelled job: back to the queue (or, while some of
-- its dependencies are unfinished, to waiting for them) with everything of
-- its previous runs reset (its deadline too), parameters replaced when given.
UPDATE jobs SET
    waiting_dependencies = (
        SELECT COUNT(*) FROM job_dependencies d JOIN jobs p ON p.id = d.depends_on_id
        WHERE d.job_id = jobs.id AND p.status <> 'completed'),
    cancelled_by = NULL,
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
    expires_at = NULL,
    completed_at = NULL,
    queued_at = :now,
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status IN ('failed', 'cancelled')
RETURNING *;
