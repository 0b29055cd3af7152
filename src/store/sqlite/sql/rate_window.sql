-- A rate scope's open window, if any (for /why).
SELECT closes_at, started FROM rate_windows WHERE scope = :scope AND closes_at > :now;
