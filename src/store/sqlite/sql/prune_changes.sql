-- The change log keeps its last 10,000 entries (trimmed every second by
-- the scheduler). Tailing processes read it every 20 ms, so they are never
-- that far behind in practice.
DELETE FROM job_changes WHERE seq <= (SELECT MAX(seq) FROM job_changes) - 10000;
