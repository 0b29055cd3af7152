-- Retention: keys past their lifetime.
DELETE FROM idempotency_keys WHERE expires_at <= :now;
