-- Claim by a remote worker, round-robin step: the queues (type, user) of
-- the types it serves (:types, a JSON array) with pending jobs and room
-- under their user's limit, least recently served first.
SELECT r.job_type, r.user_id FROM remote_queues r
WHERE r.job_type IN (SELECT value FROM json_each(:types)) AND r.pending > 0
  AND COALESCE((SELECT u.running FROM queue_users u WHERE u.user_id = r.user_id), 0)
      < :per_user_max
ORDER BY r.last_served, r.job_type, r.user_id
LIMIT :limit;
