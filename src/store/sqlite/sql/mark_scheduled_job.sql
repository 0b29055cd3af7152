-- The schedule and tick a job was stored for.
UPDATE jobs SET schedule = :name, schedule_tick = :tick WHERE id = :id;
