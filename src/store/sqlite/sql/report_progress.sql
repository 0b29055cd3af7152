-- Progress of a running job; only the claim's holder may report it.
UPDATE jobs SET
    progress = :progress,
    items_processed = COALESCE(:items_processed, items_processed),
    total_items = COALESCE(:total_items, total_items),
    updated_at = :now,
    revision = revision + 1
WHERE id = :id AND status = 'running' AND claim_token = :token
RETURNING *;
