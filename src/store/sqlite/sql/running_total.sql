SELECT COALESCE((SELECT n FROM status_counts WHERE status = 'running'), 0);
