-- The change log keeps the last 10,000 entries. Tailing processes read it
-- every 50 ms, so they are never that far behind in practice.
DELETE FROM job_changes WHERE seq <= (SELECT MAX(seq) FROM job_changes) - 10000;
