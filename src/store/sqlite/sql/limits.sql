-- Schema 11: limits per job type. A job's concurrency key (resolved at
-- submission) and the open rate windows: per scope (a type, or a type and
-- a key), the starts in the window that closes at `closes_at`.
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;
CREATE TABLE rate_windows (
    scope     TEXT PRIMARY KEY,
    closes_at INTEGER NOT NULL,
    started   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
