-- Schema version 5: routing by job type. A remote job (its type declared
-- `remote` in the configuration) is claimed only by a remote worker that
-- serves its type, any other job only by built-in workers; the limits
-- count every running job whatever its route. Existing jobs are built-in.
ALTER TABLE jobs ADD COLUMN remote INTEGER NOT NULL DEFAULT 0 CHECK (remote IN (0, 1));

-- A built-in claim's index holds no remote job, so it never scans past one.
DROP INDEX IF EXISTS jobs_pending_by_user;
CREATE INDEX jobs_pending_builtin
    ON jobs (user_id, priority DESC, queued_at, id) WHERE status = 'pending' AND remote = 0;
-- A remote claim looks up one type's queue of one user at a time.
CREATE INDEX jobs_pending_remote
    ON jobs (job_type, user_id, priority DESC, queued_at, id)
    WHERE status = 'pending' AND remote = 1;

-- Per type and user, the remote jobs pending and the queue's place in
-- the remote round-robin (queue_users keeps the built-in jobs pending and
-- every job running, which the per-user limit counts). Kept by the
-- triggers below; a row whose queue ran empty keeps its place until
-- cleanup forgets it once its user runs nothing.
CREATE TABLE remote_queues (
    job_type    TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    pending     INTEGER NOT NULL DEFAULT 0,
    last_served INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_type, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX remote_queues_ready ON remote_queues (job_type, last_served) WHERE pending > 0;

-- queue_users.pending counts built-in jobs only from now on (the other
-- counts as before).
DROP TRIGGER jobs_after_insert;
CREATE TRIGGER jobs_after_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    INSERT INTO queue_users (user_id, pending, running)
        VALUES (NEW.user_id, NEW.status = 'pending' AND NEW.remote = 0, NEW.status = 'running')
        ON CONFLICT (user_id) DO UPDATE SET
            pending = pending + (NEW.status = 'pending' AND NEW.remote = 0),
            running = running + (NEW.status = 'running');
    INSERT INTO job_changes (job_id, revision) VALUES (NEW.id, NEW.revision);
END;

DROP TRIGGER jobs_after_update;
CREATE TRIGGER jobs_after_update AFTER UPDATE ON jobs BEGIN
    UPDATE status_counts SET n = n - 1 WHERE status = OLD.status AND OLD.status <> NEW.status;
    INSERT INTO status_counts (status, n) SELECT NEW.status, 1 WHERE OLD.status <> NEW.status
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    -- An upsert: cleanup forgets users with nothing pending or running, so
    -- a scheduled job's user may have no row when the job becomes pending.
    INSERT INTO queue_users (user_id, pending, running)
        SELECT NEW.user_id, NEW.status = 'pending' AND NEW.remote = 0, NEW.status = 'running'
        WHERE OLD.status <> NEW.status
        ON CONFLICT (user_id) DO UPDATE SET
            pending = pending + ((NEW.status = 'pending') - (OLD.status = 'pending')) * (NEW.remote = 0),
            running = running - (OLD.status = 'running') + (NEW.status = 'running');
    INSERT INTO job_changes (job_id, revision) SELECT NEW.id, NEW.revision
        WHERE OLD.revision <> NEW.revision;
END;

DROP TRIGGER jobs_after_delete;
CREATE TRIGGER jobs_after_delete AFTER DELETE ON jobs BEGIN
    UPDATE status_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE queue_users SET
        pending = pending - (OLD.status = 'pending' AND OLD.remote = 0),
        running = running - (OLD.status = 'running')
        WHERE user_id = OLD.user_id;
END;

-- The remote queues' counts, by triggers of their own whose WHEN is all a
-- built-in job costs.
CREATE TRIGGER jobs_remote_after_insert AFTER INSERT ON jobs
WHEN NEW.remote = 1 AND NEW.status = 'pending' BEGIN
    INSERT INTO remote_queues (job_type, user_id, pending) VALUES (NEW.job_type, NEW.user_id, 1)
        ON CONFLICT (job_type, user_id) DO UPDATE SET pending = pending + 1;
END;

CREATE TRIGGER jobs_remote_after_update AFTER UPDATE OF status ON jobs
WHEN NEW.remote = 1 AND OLD.status <> NEW.status
    AND (OLD.status = 'pending' OR NEW.status = 'pending') BEGIN
    INSERT INTO remote_queues (job_type, user_id, pending)
        VALUES (NEW.job_type, NEW.user_id, NEW.status = 'pending')
        ON CONFLICT (job_type, user_id) DO UPDATE SET
            pending = pending - (OLD.status = 'pending') + (NEW.status = 'pending');
END;

CREATE TRIGGER jobs_remote_after_delete AFTER DELETE ON jobs
WHEN OLD.remote = 1 AND OLD.status = 'pending' BEGIN
    UPDATE remote_queues SET pending = pending - 1
        WHERE job_type = OLD.job_type AND user_id = OLD.user_id;
END;

-- What each worker serves: NULL for a built-in worker, else the JSON
-- array of the remote types it serves.
ALTER TABLE workers ADD COLUMN serves TEXT;
