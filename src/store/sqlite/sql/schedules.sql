-- Schema 14: schedules. One row per schedule: its definition (the
-- ScheduleSpec as JSON), where it was defined, its pause, a revision
-- bumped by every change, and the last tick fired with its job. A job a
-- schedule stored names it and the tick.
CREATE TABLE schedules (
    name         TEXT PRIMARY KEY,
    definition   TEXT NOT NULL,
    origin       TEXT NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    revision     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    active_since INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_tick_at INTEGER,
    last_job_id  TEXT
) STRICT, WITHOUT ROWID;
ALTER TABLE jobs ADD COLUMN schedule TEXT;
ALTER TABLE jobs ADD COLUMN schedule_tick INTEGER;
