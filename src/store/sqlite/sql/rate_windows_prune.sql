-- Claim under limits: rate windows that closed.
DELETE FROM rate_windows WHERE closes_at <= :now;
