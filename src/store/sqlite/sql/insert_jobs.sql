-- Submit of many jobs in one statement, so the call pays for one statement
-- journal rather than one per job: the rows of :jobs, a JSON array of
-- objects holding insert_job.sql's parameters (without the colon), in the
-- order they are inserted. RETURNING gives the rows in no set order.
INSERT INTO jobs (id, job_type, user_id, status, priority, parameters, max_attempts,
                  timeout_seconds, created_at, queued_at, scheduled_for, updated_at,
                  depends_on, waiting_dependencies, cancelled_by, error, completed_at, remote,
                  expires_at)
SELECT value ->> 'id', value ->> 'job_type', value ->> 'user_id', value ->> 'status',
       value ->> 'priority', value ->> 'parameters', value ->> 'max_attempts',
       value ->> 'timeout_seconds', :now, :now, value ->> 'scheduled_for', :now,
       value ->> 'depends_on', value ->> 'waiting_dependencies', value ->> 'cancelled_by',
       value ->> 'error', value ->> 'completed_at', value ->> 'remote',
       value ->> 'expires_at'
FROM json_each(:jobs)
ORDER BY key
RETURNING *;
