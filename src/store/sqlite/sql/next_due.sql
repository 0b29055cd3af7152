SELECT MIN(scheduled_for) FROM jobs WHERE status = 'scheduled' AND waiting_dependencies = 0;
