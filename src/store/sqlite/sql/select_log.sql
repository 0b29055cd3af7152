-- A page of a job's log after line :after, oldest first.
SELECT seq, at, attempt, stream, line FROM job_log_lines
    WHERE job_id = :job_id AND seq > :after ORDER BY seq LIMIT :limit;
