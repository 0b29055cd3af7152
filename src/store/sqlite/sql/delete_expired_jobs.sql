-- Retention: terminal jobs past their retention, in bounded batches.
-- Pending, scheduled and running jobs are never deleted by age.
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs WHERE status = 'completed' AND completed_at < :completed_before
    UNION ALL
    SELECT id FROM jobs WHERE status IN ('failed', 'cancelled') AND completed_at < :failed_before
    LIMIT 1000
);
