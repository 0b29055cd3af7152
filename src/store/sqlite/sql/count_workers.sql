SELECT COUNT(*) FILTER (WHERE last_heartbeat >= :active_since),
       COUNT(*) FILTER (WHERE last_heartbeat < :active_since)
FROM workers;
