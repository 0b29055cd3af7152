-- Submit: a new job, pending, scheduled (delayed, or waiting for
-- dependencies), or cancelled (a dependency already failed).
INSERT INTO jobs (id, job_type, user_id, status, priority, parameters, max_attempts,
                  timeout_seconds, created_at, queued_at, scheduled_for, updated_at,
                  depends_on, waiting_dependencies, cancelled_by, error, completed_at, remote,
                  concurrency_key)
VALUES (:id, :job_type, :user_id, :status, :priority, :parameters, :max_attempts,
        :timeout_seconds, :now, :now, :scheduled_for, :now,
        :depends_on, :waiting_dependencies, :cancelled_by, :error, :completed_at, :remote,
        :concurrency_key)
RETURNING *;
