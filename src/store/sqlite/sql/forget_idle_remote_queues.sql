-- Remote queues with nothing pending whose user runs nothing are forgotten
-- (as idle users are): they come back as new queues.
DELETE FROM remote_queues
WHERE pending = 0
  AND NOT EXISTS (SELECT 1 FROM queue_users u WHERE u.user_id = remote_queues.user_id AND u.running > 0);
