DELETE FROM job_log_lines WHERE job_id = :job_id AND seq <= :upto;
