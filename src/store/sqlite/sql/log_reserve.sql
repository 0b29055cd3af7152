-- Reserves :count line numbers and :bytes of text for an append; returns
-- the last number reserved and the log's bytes after it.
INSERT INTO job_logs (job_id, last_seq, bytes) VALUES (:job_id, :count, :bytes)
    ON CONFLICT (job_id) DO UPDATE SET last_seq = last_seq + :count, bytes = bytes + :bytes
    RETURNING last_seq, bytes;
