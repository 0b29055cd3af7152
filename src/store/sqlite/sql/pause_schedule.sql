-- Pauses (:paused = 1) or resumes (0) a schedule; a resumed one is active
-- from :now, so it owes nothing for the ticks it was paused over.
UPDATE schedules
SET paused = :paused, revision = revision + 1, updated_at = :now,
    active_since = CASE WHEN :paused THEN active_since ELSE :now END
WHERE name = :name AND paused <> :paused;
