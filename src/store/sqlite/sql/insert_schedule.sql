-- A new schedule, active from :now; nothing if the name is taken.
INSERT INTO schedules (name, definition, origin, revision, created_at, active_since, updated_at)
VALUES (:name, :definition, :origin, 1, :now, :now, :now)
ON CONFLICT (name) DO NOTHING;
