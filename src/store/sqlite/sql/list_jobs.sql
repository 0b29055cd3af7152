-- Newest first; every filter optional; :before is the previous page's last id.
-- parameters and result only when asked for (:with_parameters, :with_result):
-- a summary listing never copies them out of the row.
SELECT id, job_type, user_id, status, priority,
       CASE WHEN :with_parameters THEN parameters END AS parameters,
       CASE WHEN :with_result THEN result END AS result,
       error, progress, items_processed, total_items, attempts, max_attempts,
       interruptions, timeout_seconds, created_at, scheduled_for, started_at,
       completed_at, updated_at, worker_id, revision, depends_on,
       waiting_dependencies, cancelled_by, remote, expires_at, concurrency_key,
       schedule, schedule_tick
FROM jobs
WHERE (:status IS NULL OR status = :status)
  AND (:user_id IS NULL OR user_id = :user_id)
  AND (:job_type IS NULL OR job_type = :job_type)
  AND (:before IS NULL OR id < :before)
ORDER BY id DESC
LIMIT :limit;
