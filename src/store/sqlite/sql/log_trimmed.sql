UPDATE job_logs SET bytes = bytes - :freed WHERE job_id = :job_id;
