"""Celery app for bench/compare.py: the broker on Redis db 0 and the result
backend on db 1 of the same throw-away Redis, so the drain's observer can
count finished tasks with one DBSIZE on db 1 (only result keys live there)."""
import os

from celery import Celery

PORT = os.environ["COMPARE_REDIS_PORT"]
app = Celery("compare", broker=f"redis://127.0.0.1:{PORT}/0", backend=f"redis://127.0.0.1:{PORT}/1")
app.conf.broker_connection_retry_on_startup = True


@app.task(name="compare.noop")
def noop(*args, **kwargs):
    return None
