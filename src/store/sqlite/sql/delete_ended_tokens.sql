DELETE FROM tokens
WHERE (revoked_at IS NOT NULL AND revoked_at < :before)
   OR (expires_at IS NOT NULL AND expires_at < :before)
