-- A debounce key now holds a newly stored job.
INSERT INTO debounce_keys (user_id, job_type, key, job_id, first_at, expires_at)
VALUES (:user_id, :job_type, :key, :job_id, :first_at, :expires_at)
ON CONFLICT (user_id, job_type, key) DO UPDATE SET
    job_id = excluded.job_id,
    first_at = excluded.first_at,
    expires_at = excluded.expires_at;
