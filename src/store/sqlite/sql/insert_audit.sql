-- One audit entry; a retried append of the same entry stores it once.
INSERT OR IGNORE INTO audit_log
    (id, at, user_id, token_id, role, action, target, remote_addr, status)
VALUES
    (:id, :at, :user_id, :token_id, :role, :action, :target, :remote_addr, :status);
