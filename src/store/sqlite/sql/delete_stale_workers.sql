DELETE FROM workers WHERE last_heartbeat < :before;
