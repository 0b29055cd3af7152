-- The job a user's debounce key (of one job type) holds, and when the
-- key's first submission came.
SELECT job_id, first_at FROM debounce_keys
WHERE user_id = :user_id AND job_type = :job_type AND key = :key;
