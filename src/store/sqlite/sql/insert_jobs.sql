-- Submit: new jobs, each pending, scheduled (delayed, or waiting for
-- dependencies) or cancelled (a dependency already failed), in one
-- statement however many, so a call pays for one statement journal rather
-- than one per job. :jobs is a JSON array of objects, one field per column
-- set here, in the order they are inserted. MATERIALIZED keeps each row's
-- object as text once: every reference to json_each's `value` would turn
-- it back into text again, once per column.
WITH new (key, job) AS MATERIALIZED (SELECT key, value FROM json_each(:jobs))
INSERT INTO jobs (id, job_type, user_id, status, priority, parameters, max_attempts,
                  timeout_seconds, created_at, queued_at, scheduled_for, updated_at,
                  depends_on, waiting_dependencies, cancelled_by, error, completed_at, remote,
                  expires_at, concurrency_key, schedule, schedule_tick)
SELECT job ->> 'id', job ->> 'job_type', job ->> 'user_id', job ->> 'status',
       job ->> 'priority', job ->> 'parameters', job ->> 'max_attempts',
       job ->> 'timeout_seconds', :now, :now, job ->> 'scheduled_for', :now,
       job ->> 'depends_on', job ->> 'waiting_dependencies', job ->> 'cancelled_by',
       job ->> 'error', job ->> 'completed_at', job ->> 'remote',
       job ->> 'expires_at', job ->> 'concurrency_key', job ->> 'schedule',
       job ->> 'schedule_tick'
FROM new
ORDER BY key;
