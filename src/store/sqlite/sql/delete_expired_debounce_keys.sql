-- Debounce keys that collapse nothing any more: past their job's longest
-- wait, or whose job no longer waits (promoted, started, ended, deleted).
DELETE FROM debounce_keys
WHERE expires_at <= :now
   OR NOT EXISTS (SELECT 1 FROM jobs
                  WHERE jobs.id = debounce_keys.job_id AND jobs.status = 'scheduled');
