-- Remote round-robin: the queue just served goes to the back of the
-- rotation (:served is one past the last position handed out).
UPDATE remote_queues SET last_served = :served WHERE job_type = :job_type AND user_id = :user_id;
