-- Tail of the change log, for a process watching another one's writes.
SELECT seq, job_id, revision FROM job_changes WHERE seq > :after ORDER BY seq LIMIT 5000;
