SELECT MIN(scheduled_for) FROM jobs WHERE status = 'scheduled';
