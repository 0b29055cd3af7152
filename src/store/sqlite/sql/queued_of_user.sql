-- A user's queued jobs (pending or scheduled), for the per-user quota.
SELECT COALESCE((SELECT queued FROM queue_users WHERE user_id = :user_id), 0);
