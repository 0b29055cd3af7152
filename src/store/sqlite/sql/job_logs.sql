-- Schema version 6: per-job logs. Each line is numbered per job (seq,
-- from 1, never reused); job_logs keeps a job's last seq and the bytes of
-- line text it holds, so an append knows both without a scan and cuts the
-- oldest lines once the bytes pass the cap. Both go with their job: the
-- trigger below runs on every delete of a job (retention cleanup or any
-- other), and costs a job that logged nothing two index probes.
CREATE TABLE job_log_lines (
    job_id  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,              -- the store's clock, ms
    attempt INTEGER NOT NULL,              -- the job's attempts when written
    stream  TEXT    NOT NULL CHECK (stream IN ('log', 'stdout', 'stderr')),
    line    TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
) STRICT;

CREATE TABLE job_logs (
    job_id   TEXT    PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TRIGGER jobs_log_after_delete AFTER DELETE ON jobs BEGIN
    DELETE FROM job_log_lines WHERE job_id = OLD.id;
    DELETE FROM job_logs WHERE job_id = OLD.id;
END;
