"""Worker processes that die or are stopped, and limits shared with the
built-in workers: `kill -9` (jobs recovered, late results fenced off),
graceful shutdown on SIGTERM, global and per-user limits."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from typing import Any, Dict, List

import pytest

import jobd

from conftest import Server, read_log, wait_for, worker_subprocess

SLOW_WORKER = """
import time, jobd
worker = jobd.Worker("http://unused.invalid", concurrency=2)

@worker.handler("{type}")
def handle(job):
    deadline = time.monotonic() + job.parameters.get("seconds", 60)
    while time.monotonic() < deadline and not job.cancelled:
        time.sleep(0.01)
    return {{"slept": job.parameters.get("seconds", 60)}}
"""


def running_ids(server: Server, job_type: str) -> List[str]:
    return [j["job_id"] for j in server.client.list(status="running", job_type=job_type)]


def test_kill_9_jobs_are_recovered_and_late_results_rejected(server: Server, tmp_root: str, run_worker) -> None:
    c = server.client
    jobs = [c.submit("py_kill", {"seconds": 60}) for _ in range(2)]
    p = worker_subprocess(server, tmp_root, SLOW_WORKER.format(type="py_kill"))
    try:
        wait_for(lambda: len(running_ids(server, "py_kill")) == 2, 15, f"2 running jobs ({read_log(p)})")
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
    # The lease (2 s) ends, the reaper puts them back as an interruption.
    for j in jobs:
        back = wait_for(lambda j=j: (lambda x: x if x["status"] == "pending" else None)(c.get(j)), 15, "recovery")
        assert back["interruptions"] == 1 and back["attempts"] == 0 and back["worker_id"] is None
    # Another worker runs them.
    w = jobd.Worker(server.url, concurrency=2)
    w.handler("py_kill")(lambda job: "second worker")
    run_worker(w)
    for j in jobs:
        assert c.wait(j, timeout=15)["result"] == "second worker"


def test_a_late_result_gets_claim_lost(server: Server) -> None:
    """The raw protocol: a claim whose worker went silent is recovered; its
    token's progress and finish are then refused (fencing)."""
    c, http = server.client, server.http
    job = c.submit("py_raw")
    reg = http.post("/api/v1/workers/register", json={"worker_id": "raw-1", "host": "test", "pid": 1,
                                                      "job_types": ["py_raw"], "concurrency": 1})
    assert reg.status_code == 200, reg.text
    worker = reg.json()["worker"]
    answer = http.post("/api/v1/workers/exchange", json={"worker": worker, "held": [], "finished": [], "max_jobs": 1,
                                                         "wait_seconds": 0.4}).json()
    (claim,) = answer["jobs"]
    assert claim["job_id"] == job["job_id"] and claim["job"]["status"] == "running"
    progress = http.post("/api/v1/workers/progress", json={"job_id": job["job_id"], "token": claim["token"],
                                                           "progress": 0.5})
    assert progress.status_code == 200 and progress.json()["progress"] == 0.5
    # Silent past the lease: recovered.
    wait_for(lambda: c.get(job)["status"] == "pending", 15, "the lease to end")
    late = http.post("/api/v1/workers/exchange", json={
        "worker": worker, "held": [], "max_jobs": 0, "wait_seconds": 0,
        "finished": [{"job_id": job["job_id"], "token": claim["token"], "status": "completed", "result": 1}]})
    assert late.status_code == 200, late.text
    (entry,) = late.json()["finished"]
    assert entry["error"] == "ClaimLostError", entry
    progress = http.post("/api/v1/workers/progress", json={"job_id": job["job_id"], "token": claim["token"],
                                                           "progress": 0.9})
    assert progress.status_code == 409 and progress.json()["error"] == "ClaimLostError"
    assert c.get(job)["status"] == "pending" and c.get(job).get("result") is None
    http.post("/api/v1/workers/unregister", json={"worker": worker, "release": []})
    c.cancel(job)


def test_sigterm_finishes_short_jobs_and_gives_long_ones_back(server: Server, tmp_root: str) -> None:
    c = server.client
    short = c.submit("py_shutdown", {"seconds": 1.0})
    long = c.submit("py_shutdown", {"seconds": 60})
    p = worker_subprocess(server, tmp_root, SLOW_WORKER.format(type="py_shutdown"), "--grace", "3")
    try:
        wait_for(lambda: len(running_ids(server, "py_shutdown")) == 2, 15, f"2 running jobs ({read_log(p)})")
        attempts = c.get(long)["attempts"]
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0, read_log(p)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert c.get(short)["status"] == "completed" and c.get(short)["result"] == {"slept": 1.0}
    given_back = c.get(long)
    assert attempts == 1 and given_back["status"] == "pending" and given_back["attempts"] == 0, given_back
    assert 2.5 < took < 10, took  # waited out the grace period for the long one, no more
    assert "giving back 1 running jobs" in read_log(p)
    c.cancel(long)


def test_a_second_signal_gives_running_jobs_back_at_once(server: Server, tmp_root: str) -> None:
    c = server.client
    long = c.submit("py_shutdown", {"seconds": 60}, user_id="second-signal")
    p = worker_subprocess(server, tmp_root, SLOW_WORKER.format(type="py_shutdown"), "--grace", "60")
    try:
        wait_for(lambda: c.get(long)["status"] == "running", 15, f"the job to run ({read_log(p)})")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutting down" in read_log(p), 5, "the first signal to be heard")
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0, read_log(p)
        assert time.monotonic() - t0 < 5  # not the 60 s grace
    finally:
        if p.poll() is None:
            p.kill()
    given_back = c.get(long)
    assert given_back["status"] == "pending" and given_back["attempts"] == 0, (given_back, read_log(p))
    c.cancel(long)


def test_limits_hold_with_builtin_and_python_workers(start_server, run_worker) -> None:
    # Two built-in slots and two Python ones: each kind can fill only half
    # of the global limit, so both run together and the limit is reached.
    s = start_server("--global-max-concurrent-jobs", "4", "--per-user-max-concurrent-jobs", "2", "--workers", "2")
    c = s.client
    w = jobd.Worker(s.url, concurrency=2)
    python_running = collections.Counter()
    lock = threading.Lock()

    @w.handler("py_limits")
    def handle(job: jobd.JobContext) -> Any:
        with lock:
            python_running["now"] += 1
        job.wait_cancelled(0.15)
        with lock:
            python_running["now"] -= 1
        return None

    run_worker(w)
    users = ["u1", "u2", "u3"]
    jobs = []
    for _ in range(8):
        for u in users:
            jobs.append(c.submit("py_limits", user_id=u))
            jobs.append(c.submit("sleep", {"seconds": 0.15, "steps": 1}, user_id=u))
    samples: List[Dict[str, int]] = []
    mixed = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = list(c.list(status="running"))
        per_user = collections.Counter(j["user_id"] for j in running)
        kinds = collections.Counter(j["job_type"] for j in running)
        stats = c.stats()
        samples.append({"total": len(running), "stats": stats["running_jobs"], "most_per_user": max(
            per_user.values(), default=0)})
        mixed += bool(kinds["py_limits"] and kinds["sleep"])
        if stats["completed_jobs"] == len(jobs):
            break
    assert stats["completed_jobs"] == len(jobs), stats
    assert max(x["total"] for x in samples) <= 4 and max(x["stats"] for x in samples) <= 4, samples
    assert max(x["most_per_user"] for x in samples) <= 2, samples
    assert mixed > 0, "built-in and Python jobs never ran at the same time"
    assert max(x["total"] for x in samples) == 4  # the limit was reached, not just respected


@pytest.mark.parametrize("store", ["redis"], indirect=True)  # only Redis can lose its data under a server
def test_worker_carries_on_when_the_store_forgets_it(start_server, run_worker, store: str) -> None:
    """A Redis that lost its data forgets the worker's registration; the
    worker's next call registers it again, and it carries on."""
    s = start_server()
    c = s.client
    w = jobd.Worker(s.url)
    w.handler("py_forget")(lambda job: "ok")
    run_worker(w)
    assert c.wait(c.submit("py_forget"), timeout=10)["result"] == "ok"
    redis_port = int(s.proc.args[s.proc.args.index("--store") + 1].rsplit(":", 1)[1].split("/")[0])
    prefix = s.proc.args[s.proc.args.index("--redis-prefix") + 1]
    _redis_delete_prefix(redis_port, prefix)
    assert c.wait(c.submit("py_forget"), timeout=15)["result"] == "ok"


def _redis_delete_prefix(port: int, prefix: str) -> None:
    import socket

    def cmd(sock: socket.socket, *args: str) -> bytes:
        sock.sendall(b"".join([f"*{len(args)}\r\n".encode()] + [f"${len(a)}\r\n{a}\r\n".encode() for a in args]))
        return sock.recv(1 << 20)

    with socket.create_connection(("127.0.0.1", port)) as sock:
        script = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1"
        cmd(sock, "EVAL", script, "0", "{" + prefix + "}*")

