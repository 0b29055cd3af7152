-- Retention: audit entries older than :before, in bounded batches.
DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE at < :before LIMIT 1000
);
