-- Schema version 2: job dependencies. A job with unfinished dependencies
-- waits as 'scheduled' with waiting_dependencies > 0. The triggers below
-- resolve dependencies inside the same transaction as the change that
-- settles them (they need PRAGMA recursive_triggers, set on every
-- connection), so every path (finish, cancel, recovery, restart) obeys them.

ALTER TABLE jobs ADD COLUMN depends_on TEXT;             -- JSON array of ids
ALTER TABLE jobs ADD COLUMN waiting_dependencies INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancelled_by TEXT;           -- the dependency that cancelled it

CREATE TABLE job_dependencies (
    job_id        TEXT NOT NULL,
    depends_on_id TEXT NOT NULL,
    PRIMARY KEY (job_id, depends_on_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX job_dependents ON job_dependencies (depends_on_id);

-- A dependency completed: one fewer to wait for; with none left the job
-- becomes pending (or stays scheduled until its own run_at).
CREATE TRIGGER jobs_dependency_completed AFTER UPDATE OF status ON jobs
WHEN NEW.status = 'completed' AND OLD.status <> 'completed' BEGIN
    UPDATE jobs SET
        waiting_dependencies = waiting_dependencies - 1,
        updated_at = NEW.updated_at,
        revision = revision + 1
    WHERE status = 'scheduled' AND waiting_dependencies > 0
      AND id IN (SELECT job_id FROM job_dependencies WHERE depends_on_id = NEW.id);
    UPDATE jobs SET
        status = 'pending',
        queued_at = NEW.updated_at,
        revision = revision + 1
    WHERE status = 'scheduled' AND waiting_dependencies = 0
      AND (scheduled_for IS NULL OR scheduled_for <= NEW.updated_at)
      AND id IN (SELECT job_id FROM job_dependencies WHERE depends_on_id = NEW.id);
END;

-- A dependency failed or was cancelled: its waiting dependents are
-- cancelled, naming it (and theirs in turn, by recursion).
CREATE TRIGGER jobs_dependency_failed AFTER UPDATE OF status ON jobs
WHEN NEW.status IN ('failed', 'cancelled') AND OLD.status NOT IN ('failed', 'cancelled') BEGIN
    UPDATE jobs SET
        status = 'cancelled',
        cancelled_by = NEW.id,
        error = 'dependency ' || NEW.id || CASE NEW.status WHEN 'failed' THEN ' failed' ELSE ' was cancelled' END,
        completed_at = NEW.updated_at,
        updated_at = NEW.updated_at,
        revision = revision + 1
    WHERE status = 'scheduled'
      AND id IN (SELECT job_id FROM job_dependencies WHERE depends_on_id = NEW.id);
END;

-- A failed or cancelled job was restarted: the dependents it cancelled wait
-- for their dependencies again (and theirs in turn, by recursion).
CREATE TRIGGER jobs_dependency_revived AFTER UPDATE OF status ON jobs
WHEN OLD.status IN ('failed', 'cancelled') AND NEW.status IN ('pending', 'scheduled') BEGIN
    UPDATE jobs SET
        status = 'scheduled',
        cancelled_by = NULL,
        error = NULL,
        completed_at = NULL,
        updated_at = NEW.updated_at,
        revision = revision + 1,
        waiting_dependencies = (
            SELECT COUNT(*) FROM job_dependencies d JOIN jobs p ON p.id = d.depends_on_id
            WHERE d.job_id = jobs.id AND p.status <> 'completed')
    WHERE status = 'cancelled' AND cancelled_by = NEW.id;
END;
