-- The status a restarted job takes: waiting for dependencies, or queued.
UPDATE jobs SET status = CASE WHEN waiting_dependencies > 0 THEN 'scheduled' ELSE 'pending' END
WHERE id = :id
RETURNING *;
