SELECT status, n FROM status_counts;
