-- Newest first; every filter optional; :before is the previous page's last id.
SELECT * FROM jobs
WHERE (:status IS NULL OR status = :status)
  AND (:user_id IS NULL OR user_id = :user_id)
  AND (:job_type IS NULL OR job_type = :job_type)
  AND (:before IS NULL OR id < :before)
ORDER BY id DESC
LIMIT :limit;
