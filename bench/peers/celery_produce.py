"""Fills Celery's backlog: n no-op tasks sent with delay() one by one (each
call's latency recorded); prints {"filled": ...} and waits for a line on
stdin (while bench/compare.py reads Redis's counters); then times
AsyncResult(id).state of the first n_status (a GET of a result key that does
not exist yet: PENDING) and prints the results as one JSON line.
Usage: celery_produce.py N N_STATUS (the port in COMPARE_REDIS_PORT)."""
import json
import sys
import time

import celery
import kombu

from celery_app import app, noop

n, n_status = (int(a) for a in sys.argv[1:3])
enqueue, ids = [], []
started = time.perf_counter()
for _ in range(n):
    t = time.perf_counter()
    result = noop.delay()
    enqueue.append((time.perf_counter() - t) * 1e3)
    if len(ids) < n_status:
        ids.append(result.id)
enqueue_s = time.perf_counter() - started
print(json.dumps({"filled": n, "enqueue_s": enqueue_s}), flush=True)
sys.stdin.readline()  # bench/compare.py reads Redis's counters meanwhile
status = []
for task_id in ids:
    t = time.perf_counter()
    state = app.AsyncResult(task_id).state
    status.append((time.perf_counter() - t) * 1e3)
    assert state == "PENDING", state
print(json.dumps({"enqueue_s": enqueue_s, "enqueue_ms": enqueue, "status_ms": status,
                  "versions": {"celery": celery.__version__, "kombu": kombu.__version__,
                               "python": sys.version.split()[0]}}))
