-- Schema version 7: the audit log. One row per recorded change; ids are
-- UUID v7 text, so they sort by time and a listing pages by id. No secret
-- is ever stored here (no token value, no job parameters).
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

CREATE INDEX audit_log_by_at ON audit_log (at);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
CREATE INDEX audit_log_by_target ON audit_log (target, id);
