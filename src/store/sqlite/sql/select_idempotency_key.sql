-- The job a user's idempotency key holds, unless the key expired.
SELECT fingerprint, job_id FROM idempotency_keys
WHERE user_id = :user_id AND key = :key AND expires_at > :now;
