-- The embedded store's schema, applied at open (every statement is
-- idempotent). Timestamps are milliseconds since the Unix epoch, UTC.

CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,          -- UUID v7: sorts by creation
    job_type         TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('pending', 'running', 'completed', 'failed', 'cancelled', 'scheduled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    parameters       TEXT    NOT NULL,          -- JSON object
    result           TEXT,                      -- JSON, once completed
    error            TEXT,
    progress         REAL    NOT NULL DEFAULT 0,
    items_processed  INTEGER,
    total_items      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 1,
    interruptions    INTEGER NOT NULL DEFAULT 0,
    timeout_seconds  REAL,
    created_at       INTEGER NOT NULL,
    queued_at        INTEGER NOT NULL,          -- FIFO position within a user's queue
    scheduled_for    INTEGER,
    started_at       INTEGER,
    completed_at     INTEGER,
    updated_at       INTEGER NOT NULL,
    revision         INTEGER NOT NULL DEFAULT 1,
    -- The processing lock: set by a claim, cleared by every transition out
    -- of running (the CHECK makes an orphaned lock impossible). A worker's
    -- update must quote claim_token (fencing).
    worker_id        TEXT,
    claim_token      TEXT,
    lease_expires_at INTEGER,
    CHECK ((status = 'running') = (claim_token IS NOT NULL))
) STRICT;

-- Claim order within a user: priority, then first in, first out.
CREATE INDEX IF NOT EXISTS jobs_pending_by_user
    ON jobs (user_id, priority DESC, queued_at, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_scheduled_due
    ON jobs (scheduled_for) WHERE status = 'scheduled';
-- Running jobs (by lease, by worker) are found through jobs_by_status:
-- there are no more of them than workers' slots.
CREATE INDEX IF NOT EXISTS jobs_finished
    ON jobs (status, completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, id);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (user_id, id);
CREATE INDEX IF NOT EXISTS jobs_by_type ON jobs (job_type, id);

-- Exact per-status counts for /queue/stats, kept by the triggers below.
CREATE TABLE IF NOT EXISTS status_counts (
    status TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) STRICT;

-- Per-user queue state for fair claiming, kept by the triggers below
-- (pending, running); last_served orders users round-robin.
CREATE TABLE IF NOT EXISTS queue_users (
    user_id     TEXT PRIMARY KEY,
    pending     INTEGER NOT NULL DEFAULT 0,
    running     INTEGER NOT NULL DEFAULT 0,
    last_served INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS queue_users_ready ON queue_users (last_served) WHERE pending > 0;

-- The change log another process tails to learn of this one's writes.
-- Trimmed to its last entries every second (retention.rs).
CREATE TABLE IF NOT EXISTS job_changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id   TEXT    NOT NULL,
    revision INTEGER NOT NULL    -- the job's revision after the change
) STRICT;

CREATE TABLE IF NOT EXISTS workers (
    worker_id      TEXT PRIMARY KEY,
    host           TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    concurrency    INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;

CREATE TRIGGER IF NOT EXISTS jobs_after_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    INSERT INTO queue_users (user_id, pending, running)
        VALUES (NEW.user_id, NEW.status = 'pending', NEW.status = 'running')
        ON CONFLICT (user_id) DO UPDATE SET
            pending = pending + (NEW.status = 'pending'),
            running = running + (NEW.status = 'running');
    INSERT INTO job_changes (job_id, revision) VALUES (NEW.id, NEW.revision);
END;

CREATE TRIGGER IF NOT EXISTS jobs_after_update AFTER UPDATE ON jobs BEGIN
    UPDATE status_counts SET n = n - 1 WHERE status = OLD.status AND OLD.status <> NEW.status;
    INSERT INTO status_counts (status, n) SELECT NEW.status, 1 WHERE OLD.status <> NEW.status
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    -- An upsert: cleanup forgets users with nothing pending or running, so
    -- a scheduled job's user may have no row when the job becomes pending.
    INSERT INTO queue_users (user_id, pending, running)
        SELECT NEW.user_id, NEW.status = 'pending', NEW.status = 'running'
        WHERE OLD.status <> NEW.status
        ON CONFLICT (user_id) DO UPDATE SET
            pending = pending - (OLD.status = 'pending') + (NEW.status = 'pending'),
            running = running - (OLD.status = 'running') + (NEW.status = 'running');
    INSERT INTO job_changes (job_id, revision) SELECT NEW.id, NEW.revision
        WHERE OLD.revision <> NEW.revision;
END;

CREATE TRIGGER IF NOT EXISTS jobs_after_delete AFTER DELETE ON jobs BEGIN
    UPDATE status_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE queue_users SET
        pending = pending - (OLD.status = 'pending'),
        running = running - (OLD.status = 'running')
        WHERE user_id = OLD.user_id;
END;
