-- A user's idempotency key now holds this job (replacing an expired one,
-- or one whose job is gone).
INSERT INTO idempotency_keys (user_id, key, fingerprint, job_id, expires_at)
VALUES (:user_id, :key, :fingerprint, :job_id, :expires_at)
ON CONFLICT (user_id, key) DO UPDATE
SET fingerprint = excluded.fingerprint, job_id = excluded.job_id, expires_at = excluded.expires_at;
