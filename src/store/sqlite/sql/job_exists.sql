-- Whether a job is stored.
SELECT 1 FROM jobs WHERE id = :id;
