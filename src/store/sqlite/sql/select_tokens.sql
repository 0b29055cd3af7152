SELECT id, secret_hash, user_id, role, job_id, created_at, expires_at, revoked_at
FROM tokens ORDER BY created_at DESC, id
