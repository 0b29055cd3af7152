-- Remote round-robin: the last position in the rotation handed out.
SELECT COALESCE(MAX(last_served), 0) FROM remote_queues;
