INSERT INTO job_log_lines (job_id, seq, at, attempt, stream, line)
    VALUES (:job_id, :seq, :at, :attempt, :stream, :line);
