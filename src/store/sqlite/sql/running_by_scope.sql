-- Claim under limits: running jobs per type and concurrency key (no more
-- rows than running jobs, found through jobs_by_status).
SELECT job_type, concurrency_key, count(*) FROM jobs
WHERE status = 'running'
GROUP BY job_type, concurrency_key;
