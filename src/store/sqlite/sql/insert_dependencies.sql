-- The dependency edges of many jobs in one statement: :edges is a JSON
-- array of [job_id, depends_on_id] pairs.
INSERT OR IGNORE INTO job_dependencies (job_id, depends_on_id)
SELECT value ->> 0, value ->> 1 FROM json_each(:edges);
