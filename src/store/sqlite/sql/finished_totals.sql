-- The finished totals: jobs in each terminal status now plus those that
-- left it (sql/retired.sql), in one read transaction.
SELECT s.status,
       COALESCE((SELECT n FROM status_counts WHERE status = s.status), 0)
     + COALESCE((SELECT n FROM retired WHERE status = s.status), 0)
FROM (SELECT 'completed' AS status UNION ALL SELECT 'failed' UNION ALL SELECT 'cancelled') AS s;
