INSERT OR IGNORE INTO job_dependencies (job_id, depends_on_id) VALUES (:job_id, :depends_on_id);
