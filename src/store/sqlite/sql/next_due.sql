-- The earliest due time, by the due-time index (see promote_due.sql).
SELECT scheduled_for FROM jobs INDEXED BY jobs_scheduled_due
WHERE status = 'scheduled' AND waiting_dependencies = 0 AND scheduled_for IS NOT NULL
ORDER BY scheduled_for
LIMIT 1;
