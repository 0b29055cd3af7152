-- A job's lines, oldest first, with their bytes of text: read until the
-- lines to drop free enough (the cap's trim reads only what it drops).
SELECT seq, octet_length(line) FROM job_log_lines WHERE job_id = :job_id ORDER BY seq;
