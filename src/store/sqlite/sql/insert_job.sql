-- Submit: a new job, pending or scheduled.
INSERT INTO jobs (id, job_type, user_id, status, priority, parameters, max_attempts,
                  timeout_seconds, created_at, queued_at, scheduled_for, updated_at)
VALUES (:id, :job_type, :user_id, :status, :priority, :parameters, :max_attempts,
        :timeout_seconds, :now, :now, :scheduled_for, :now)
RETURNING *;
