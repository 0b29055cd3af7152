-- A schedule's tick, claimed for :job_id: only from the revision the tick
-- was computed from, unpaused, and after the last tick fired.
UPDATE schedules SET last_tick_at = :tick, last_job_id = :job_id
WHERE name = :name AND revision = :revision AND paused = 0
  AND (last_tick_at IS NULL OR last_tick_at < :tick);
