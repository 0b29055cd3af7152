-- Round-robin: the user just served goes to the back of the rotation.
UPDATE queue_users SET last_served = (SELECT MAX(last_served) FROM queue_users) + 1
WHERE user_id = :user_id;
