-- A start in a rate scope: opens its window (closing at :closes_at) or
-- counts in the open one.
INSERT INTO rate_windows (scope, closes_at, started) VALUES (:scope, :closes_at, 1)
ON CONFLICT (scope) DO UPDATE SET started = started + 1;
