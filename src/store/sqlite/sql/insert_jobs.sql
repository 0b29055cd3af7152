-- Submit: new jobs, each pending, scheduled (delayed, or waiting for
-- dependencies) or cancelled (a dependency already failed), in one
-- statement however many, so a call pays for one statement journal rather
-- than one per job. :jobs is a JSON array of objects, one field per column
-- set here, in the order they are inserted. RETURNING gives the rows in no
-- set order.
INSERT INTO jobs (id, job_type, user_id, status, priority, parameters, max_attempts,
                  timeout_seconds, created_at, queued_at, scheduled_for, updated_at,
                  depends_on, waiting_dependencies, cancelled_by, error, completed_at, remote,
                  expires_at, concurrency_key)
SELECT value ->> 'id', value ->> 'job_type', value ->> 'user_id', value ->> 'status',
       value ->> 'priority', value ->> 'parameters', value ->> 'max_attempts',
       value ->> 'timeout_seconds', :now, :now, value ->> 'scheduled_for', :now,
       value ->> 'depends_on', value ->> 'waiting_dependencies', value ->> 'cancelled_by',
       value ->> 'error', value ->> 'completed_at', value ->> 'remote',
       value ->> 'expires_at', value ->> 'concurrency_key'
FROM json_each(:jobs)
ORDER BY key
RETURNING *;
