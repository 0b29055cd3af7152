-- Claim under limits: the rate windows still open, after closed ones go.
SELECT scope, closes_at, started FROM rate_windows WHERE closes_at > :now;
