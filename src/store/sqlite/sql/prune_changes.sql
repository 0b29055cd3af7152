-- The change log keeps its last 10,000 entries (trimmed every second by
-- the store's own task, retention.rs). Tailing processes read it every
-- 2 ms, so they are never that far behind in practice. At most :chunk
-- entries go per call, so one call stays short; the caller repeats while a
-- full chunk went.
DELETE FROM job_changes
WHERE seq <= MIN((SELECT MAX(seq) FROM job_changes) - 10000,
                 (SELECT MIN(seq) FROM job_changes) + :chunk - 1);
