-- The user of a job a restart would put back in the queue (failed or
-- cancelled), for the per-user quota; no row otherwise.
SELECT user_id FROM jobs WHERE id = :id AND status IN ('failed', 'cancelled');
