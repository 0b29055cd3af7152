-- A stored schedule's new definition and origin; its pause and ticks stay.
-- Unchanged, it is not touched (every server starting with the
-- configuration file writes its schedules again).
UPDATE schedules
SET definition = :definition, origin = :origin, revision = revision + 1, updated_at = :now
WHERE name = :name AND (definition <> :definition OR origin <> :origin);
