-- Retention: audit entries made before the cut-off, whose ids sort below
-- :below (the text every id made at the cut-off or later starts with), in
-- bounded batches.
DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE id < :below LIMIT 1000
);
