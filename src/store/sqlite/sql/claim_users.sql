-- Claim by a built-in worker, round-robin step: users with built-in jobs
-- pending and room under the per-user limit, least recently served first,
-- with their running counts.
SELECT user_id, running FROM queue_users
WHERE pending > 0 AND running < :per_user_max
ORDER BY last_served, user_id
LIMIT :limit;
