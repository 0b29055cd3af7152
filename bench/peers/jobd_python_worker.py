"""Workers of the `jobd` Python package (clients/python) for bench/compare.py.

    python -m jobd worker jobd_python_worker:worker --burst --url URL
    python -m jobd worker jobd_python_worker:cancel_worker --url URL

`worker` runs the no-op job type `py_noop` (the same no-op as RQ's and
Celery's), `cancel_worker` a handler of `py_cancel` that reports nothing
and spins until it sees `job.cancelled`, printing when it started and
when it saw the cancel (time.monotonic(), the system-wide CLOCK_MONOTONIC
that compare.py reads too)."""
import os
import sys
import time

import jobd

URL = os.environ.get("JOBD_URL", "http://127.0.0.1:8000")

worker = jobd.Worker(URL, concurrency=int(os.environ.get("COMPARE_PY_CONCURRENCY", "32")))


@worker.handler("py_noop")
def noop(job):
    return None


cancel_worker = jobd.Worker(URL, concurrency=1)


@cancel_worker.handler("py_cancel")
def spin(job):
    sys.stdout.write(f"start {job.id}\n")
    sys.stdout.flush()
    while not job.cancelled:
        time.sleep(0.0005)
    sys.stdout.write(f"seen {job.id} {time.monotonic()!r}\n")
    sys.stdout.flush()
