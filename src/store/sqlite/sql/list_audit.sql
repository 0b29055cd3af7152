-- Newest first; every filter optional; :before is the previous page's last id.
SELECT id, at, user_id, token_id, role, action, target, remote_addr, status
FROM audit_log
WHERE (:user_id IS NULL OR user_id = :user_id)
  AND (:action IS NULL OR action = :action)
  AND (:target IS NULL OR target = :target)
  AND (:before IS NULL OR id < :before)
ORDER BY id DESC
LIMIT :limit;
