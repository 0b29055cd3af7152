-- Schema version 7: queued jobs per user, for the per-user quota
-- (`max_queued_jobs_per_user`). queue_users.queued counts a user's jobs
-- that are pending (built-in and remote) or scheduled, kept by the same
-- triggers and in the same row update as the other counts, so keeping it
-- costs no extra write; a submission reads it in its own transaction.
ALTER TABLE queue_users ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;

INSERT INTO queue_users (user_id, queued)
    SELECT user_id, COUNT(*) FROM jobs WHERE status IN ('pending', 'scheduled') GROUP BY user_id
    ON CONFLICT (user_id) DO UPDATE SET queued = excluded.queued;

DROP TRIGGER jobs_after_insert;
CREATE TRIGGER jobs_after_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    INSERT INTO queue_users (user_id, pending, running, queued)
        VALUES (NEW.user_id, NEW.status = 'pending' AND NEW.remote = 0, NEW.status = 'running',
                NEW.status IN ('pending', 'scheduled'))
        ON CONFLICT (user_id) DO UPDATE SET
            pending = pending + (NEW.status = 'pending' AND NEW.remote = 0),
            running = running + (NEW.status = 'running'),
            queued = queued + (NEW.status IN ('pending', 'scheduled'));
    INSERT INTO job_changes (job_id, revision) VALUES (NEW.id, NEW.revision);
END;

DROP TRIGGER jobs_after_update;
CREATE TRIGGER jobs_after_update AFTER UPDATE ON jobs BEGIN
    UPDATE status_counts SET n = n - 1 WHERE status = OLD.status AND OLD.status <> NEW.status;
    INSERT INTO status_counts (status, n) SELECT NEW.status, 1 WHERE OLD.status <> NEW.status
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
    -- An upsert: cleanup forgets users with nothing queued or running.
    INSERT INTO queue_users (user_id, pending, running, queued)
        SELECT NEW.user_id, NEW.status = 'pending' AND NEW.remote = 0, NEW.status = 'running',
               NEW.status IN ('pending', 'scheduled')
        WHERE OLD.status <> NEW.status
        ON CONFLICT (user_id) DO UPDATE SET
            pending = pending + ((NEW.status = 'pending') - (OLD.status = 'pending')) * (NEW.remote = 0),
            running = running - (OLD.status = 'running') + (NEW.status = 'running'),
            queued = queued - (OLD.status IN ('pending', 'scheduled'))
                            + (NEW.status IN ('pending', 'scheduled'));
    INSERT INTO job_changes (job_id, revision) SELECT NEW.id, NEW.revision
        WHERE OLD.revision <> NEW.revision;
END;

DROP TRIGGER jobs_after_delete;
CREATE TRIGGER jobs_after_delete AFTER DELETE ON jobs BEGIN
    UPDATE status_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE queue_users SET
        pending = pending - (OLD.status = 'pending' AND OLD.remote = 0),
        running = running - (OLD.status = 'running'),
        queued = queued - (OLD.status IN ('pending', 'scheduled'))
        WHERE user_id = OLD.user_id;
END;
