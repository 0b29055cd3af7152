"""Fills RQ's backlog: n no-op jobs enqueued one by one (each call's latency
recorded); prints {"filled": ...} and waits for a line on stdin (while
bench/compare.py reads Redis's counters); then times Job.fetch + get_status
of the first n_status and prints the results as one JSON line.
Usage: rq_produce.py PORT N N_STATUS"""
import json
import sys
import time

import redis
import rq
from redis import Redis
from rq import Queue
from rq.job import Job

from rq_jobs import noop

port, n, n_status = (int(a) for a in sys.argv[1:4])
conn = Redis(host="127.0.0.1", port=port)
q = Queue("bench", connection=conn)
enqueue, ids = [], []
started = time.perf_counter()
for _ in range(n):
    t = time.perf_counter()
    job = q.enqueue(noop)
    enqueue.append((time.perf_counter() - t) * 1e3)
    if len(ids) < n_status:
        ids.append(job.id)
enqueue_s = time.perf_counter() - started
print(json.dumps({"filled": n, "enqueue_s": enqueue_s}), flush=True)
sys.stdin.readline()  # bench/compare.py reads Redis's counters meanwhile
status = []
for job_id in ids:
    t = time.perf_counter()
    state = Job.fetch(job_id, connection=conn).get_status()
    status.append((time.perf_counter() - t) * 1e3)
    assert str(state).lower().endswith("queued"), state
print(json.dumps({"enqueue_s": enqueue_s, "enqueue_ms": enqueue, "status_ms": status,
                  "versions": {"rq": rq.__version__, "redis-py": redis.__version__,
                               "python": sys.version.split()[0]}}))
