-- promote: makes scheduled jobs whose time has come pending.
-- KEYS[1] prefix
-- ARGV now
-- Returns how many were promoted (at most 1000 per call).
return promote_due(ARGV[1], 1000)
