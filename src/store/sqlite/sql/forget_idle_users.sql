DELETE FROM queue_users WHERE pending = 0 AND running = 0 AND queued = 0;
