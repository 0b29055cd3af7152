SELECT id, secret_hash, user_id, role, job_id, created_at, expires_at, revoked_at
FROM tokens WHERE id = :id
