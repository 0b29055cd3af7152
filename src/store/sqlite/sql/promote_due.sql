-- Scheduled jobs whose time has come join the back of their user's queue.
UPDATE jobs SET
    status = 'pending',
    queued_at = scheduled_for,
    updated_at = :now,
    revision = revision + 1
WHERE status = 'scheduled' AND waiting_dependencies = 0 AND scheduled_for <= :now
RETURNING *;
