-- A debounced submission collapses into the key's job while it waits
-- (scheduled, not yet started, waiting for no dependency): the latest
-- submission's input, settings and deadline, due at :scheduled_for.
UPDATE jobs SET
    parameters = :parameters,
    priority = :priority,
    max_attempts = :max_attempts,
    timeout_seconds = :timeout_seconds,
    scheduled_for = :scheduled_for,
    expires_at = :expires_at,
    concurrency_key = :concurrency_key,
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status = 'scheduled' AND attempts = 0 AND waiting_dependencies = 0
RETURNING *;
