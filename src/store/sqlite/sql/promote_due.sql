-- Scheduled jobs whose time has come join the back of their user's queue.
-- By the due-time index, named: left to itself the planner takes
-- jobs_by_status (an equality beats a range) and reads every scheduled
-- job on each claim, 50,000 delayed jobs making a drain 7x slower.
UPDATE jobs INDEXED BY jobs_scheduled_due SET
    status = 'pending',
    queued_at = scheduled_for,
    updated_at = :now,
    revision = revision + 1
WHERE status = 'scheduled' AND waiting_dependencies = 0 AND scheduled_for <= :now
RETURNING *;
