-- Schema version 7: the audit log. One row per recorded change; ids are
-- UUID v7 text carrying the entry's time (at), so they sort by time: a
-- listing pages by id, and retention deletes below the cut-off's id, with
-- no index on at (each index costs every insert, and submissions insert
-- one row each). No secret is ever stored here (no token value, no job
-- parameters).
CREATE TABLE audit_log (
    id          TEXT    PRIMARY KEY,
    at          INTEGER NOT NULL,      -- ms, the time the id carries
    user_id     TEXT,
    token_id    TEXT,
    role        TEXT,
    action      TEXT    NOT NULL,
    target      TEXT,
    remote_addr TEXT,
    status      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
CREATE INDEX audit_log_by_target ON audit_log (target, id);
