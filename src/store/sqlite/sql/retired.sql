-- Schema version 4: the finished totals. `retired` tallies jobs that left
-- a terminal status (deleted by cleanup, or restarted), per status; with
-- status_counts it says how many jobs ever ended so, a figure that never
-- goes down. Only those two rare moves touch it: the workers' hot path
-- (into a terminal status) only evaluates the triggers' WHEN.
CREATE TABLE IF NOT EXISTS retired (
    status TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) STRICT;

CREATE TRIGGER IF NOT EXISTS jobs_retire_on_delete AFTER DELETE ON jobs
WHEN OLD.status IN ('completed', 'failed', 'cancelled') BEGIN
    INSERT INTO retired (status, n) VALUES (OLD.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER IF NOT EXISTS jobs_retire_on_reopen AFTER UPDATE OF status ON jobs
WHEN OLD.status IN ('completed', 'failed', 'cancelled')
    AND NEW.status NOT IN ('completed', 'failed', 'cancelled') BEGIN
    INSERT INTO retired (status, n) VALUES (OLD.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
