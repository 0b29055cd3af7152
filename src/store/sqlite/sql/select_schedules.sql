-- Every schedule (or the one named :name), by name.
SELECT name, definition, origin, paused, revision, created_at, active_since, updated_at,
       last_tick_at, last_job_id
FROM schedules
WHERE :name IS NULL OR name = :name
ORDER BY name;
