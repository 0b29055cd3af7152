-- Drops a job's oldest lines until at least :excess bytes of text are
-- gone (the fewest lines that free that much); returns each one's bytes.
DELETE FROM job_log_lines WHERE job_id = :job_id AND seq <= (
    SELECT min(seq) FROM (
        SELECT seq, sum(octet_length(line)) OVER (ORDER BY seq) AS freed
        FROM job_log_lines WHERE job_id = :job_id
    ) WHERE freed >= :excess
)
RETURNING octet_length(line);
