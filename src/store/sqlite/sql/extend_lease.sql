-- Heartbeat: renews one held job's lease; no row means the claim is gone.
UPDATE jobs SET lease_expires_at = :lease_until
WHERE id = :id AND status = 'running' AND claim_token = :token;
