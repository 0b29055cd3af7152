INSERT INTO tokens (id, secret_hash, user_id, role, job_id, created_at, expires_at, revoked_at)
VALUES (:id, :secret_hash, :user_id, :role, :job_id, :created_at, :expires_at, NULL)
