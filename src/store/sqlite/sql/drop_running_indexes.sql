-- Schema version 3: running jobs are no longer indexed by lease and by
-- worker. They are few (no more than the workers' slots) and found through
-- jobs_by_status, while the two indexes cost four index writes per job.
DROP INDEX IF EXISTS jobs_running_lease;
DROP INDEX IF EXISTS jobs_running_worker;
