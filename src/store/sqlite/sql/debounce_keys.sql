-- Schema (debounce): debounce keys of submissions, per user and job type,
-- each holding the job its first submission stored while that job waits.
CREATE TABLE debounce_keys (
    user_id    TEXT NOT NULL,
    job_type   TEXT NOT NULL,
    key        TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    first_at   INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, job_type, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX debounce_keys_by_expiry ON debounce_keys (expires_at);
