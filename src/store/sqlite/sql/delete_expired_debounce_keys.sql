-- Debounce keys past their job's longest wait: their job is due, so the
-- key no longer collapses anything for long.
DELETE FROM debounce_keys WHERE expires_at <= :now;
