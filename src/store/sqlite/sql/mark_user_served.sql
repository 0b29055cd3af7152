-- Round-robin: the user just served goes to the back of the rotation
-- (:served is one past the last position handed out).
UPDATE queue_users SET last_served = :served WHERE user_id = :user_id;
