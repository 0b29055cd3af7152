-- The attempt of a running job whose claim is :token (no row: the claim is lost).
SELECT attempts FROM jobs WHERE id = :id AND status = 'running' AND claim_token = :token;
