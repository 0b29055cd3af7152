"""jobd.Worker against a real `jobd serve`: handlers (sync and async),
failures and retries, progress over SSE, cancel latency, time limits,
routing, burst mode, logs."""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from typing import Any, Dict, List

import pytest

import jobd

from conftest import Server, wait_for


def test_sync_handler_sees_its_job(server: Server, run_worker) -> None:
    c = server.client
    seen: List[Dict[str, Any]] = []
    w = jobd.Worker(server.url, concurrency=2)

    @w.handler("py_a")
    def handle(job: jobd.JobContext) -> Any:
        seen.append({"id": job.id, "type": job.type, "params": job.parameters, "user": job.user_id,
                     "attempt": job.attempt, "deps": job.dependencies, "thread": threading.current_thread().name})
        return {"doubled": job.parameters["x"] * 2, "deps": [d["result"] for d in job.dependencies]}

    run_worker(w)
    first = c.submit("py_a", {"x": 21}, user_id="dora")
    assert c.wait(first, timeout=10)["result"] == {"doubled": 42, "deps": []}
    second = c.submit("py_a", {"x": 1}, depends_on=[first])
    done = c.wait(second, timeout=10)
    assert done["status"] == "completed" and done["result"] == {"doubled": 2, "deps": [{"doubled": 42, "deps": []}]}
    assert seen[0]["type"] == "py_a" and seen[0]["user"] == "dora" and seen[0]["attempt"] == 1
    assert seen[1]["deps"][0]["job_id"] == first["job_id"]
    assert all(s["thread"].startswith("jobd-handler") for s in seen)


def test_async_handlers_run_concurrently(server: Server, run_worker) -> None:
    c = server.client
    w = jobd.Worker(server.url, concurrency=4)
    inside = {"now": 0, "most": 0}
    all_in = asyncio.Event()
    loop_box: List[asyncio.AbstractEventLoop] = []

    @w.handler("py_async")
    async def handle(job: jobd.JobContext) -> Any:
        loop_box.append(asyncio.get_running_loop())
        inside["now"] += 1
        inside["most"] = max(inside["most"], inside["now"])
        if inside["most"] == 4:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 10)  # all four at once on the one loop
        inside["now"] -= 1
        return job.parameters["i"]

    run_worker(w)
    jobs = [c.submit("py_async", {"i": i}, user_id=f"async-{i}") for i in range(4)]  # per-user limit 3
    done = [c.wait(j, timeout=15) for j in jobs]
    assert [j.get("result") for j in done] == [0, 1, 2, 3], [j["error"] for j in done]
    assert inside["most"] == 4 and len(set(map(id, loop_box))) == 1


def test_failures_retries_and_permanent_errors(server: Server, run_worker) -> None:
    c = server.client
    w = jobd.Worker(server.url, concurrency=2)

    @w.handler("py_retry")
    def flaky(job: jobd.JobContext) -> Any:
        mode = job.parameters["mode"]
        if mode == "permanent":
            raise jobd.PermanentError("bad input")
        if mode == "later":
            raise jobd.RetryLater(3600, "rate limited")
        if job.attempt < 3:
            raise ValueError(f"attempt {job.attempt} fails")
        return {"attempt": job.attempt}

    @w.handler("py_fail")
    def broken(job: jobd.JobContext) -> Any:
        if job.parameters.get("unjson"):
            return {"set": {1, 2}}
        raise KeyError("missing")

    run_worker(w)
    retried = c.submit("py_retry", {"mode": "flaky"})
    permanent = c.submit("py_retry", {"mode": "permanent"})
    later = c.submit("py_retry", {"mode": "later"})
    plain = c.submit("py_fail")
    unjson = c.submit("py_fail", {"unjson": True})
    done = c.wait(retried, timeout=15)
    assert (done["status"], done["attempts"], done["result"]) == ("completed", 3, {"attempt": 3})
    failed = c.wait(permanent, timeout=10)
    assert (failed["status"], failed["attempts"]) == ("failed", 1) and "PermanentError: bad input" in failed["error"]
    scheduled = wait_for(lambda: (lambda j: j if j["status"] == "scheduled" and j["attempts"] == 1 else None)(
        c.get(later)), 10, "a RetryLater job scheduled again")
    assert "rate limited" in (scheduled["error"] or "") or scheduled["scheduled_for"]
    c.cancel(later)
    failed = c.wait(plain, timeout=10)
    assert failed["status"] == "failed" and "Traceback" in failed["error"] and "KeyError: 'missing'" in failed["error"]
    failed = c.wait(unjson, timeout=10)
    assert failed["status"] == "failed" and "not JSON" in failed["error"]


def test_progress_is_seen_over_sse_while_the_handler_runs(server: Server, run_worker) -> None:
    c = server.client
    w = jobd.Worker(server.url)
    release = threading.Event()

    @w.handler("py_progress")
    def handle(job: jobd.JobContext) -> Any:
        for i in range(1, 101):
            job.progress(i / 200, items_processed=i, total_items=200)  # coalesced: not 100 posts
        assert release.wait(10), "the stream never saw the progress"
        job.progress(1.0, items_processed=200)
        return "ok"

    run_worker(w)
    job = c.submit("py_progress")
    seen = []
    for name, j in c.stream(job):
        seen.append((name, j["status"], j["progress"], j["metrics"]["items_processed"]))
        if j["status"] == "running" and j["progress"] == 0.5:
            assert j["metrics"] == {**j["metrics"], "items_processed": 100, "total_items": 200}
            release.set()  # the handler is still running: it waits for this
    assert release.is_set(), seen
    assert seen[-1][:3] == ("job_complete", "completed", 1.0)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_cancel_reaches_a_silent_handler_within_500_ms(start_server, run_worker, concurrency: int) -> None:
    """Measured from the cancel call's return to the handler seeing
    `job.cancelled`, over rounds in which each job is claimed by whichever
    waiting call had the slot. The server's waiting calls last 10 s here,
    so a cancel that only a later call would hear shows."""
    s = start_server("--heartbeat-interval-seconds", "10", "--lease-timeout-seconds", "30")
    c = s.client
    w = jobd.Worker(s.url, concurrency=concurrency)
    started: Dict[str, float] = {}
    seen: Dict[str, float] = {}

    @w.handler("py_cancel")
    def handle(job: jobd.JobContext) -> Any:
        started[job.id] = time.monotonic()
        while not job.cancelled:  # reports nothing: only the worker's channel can tell it
            time.sleep(0.001)
        seen[job.id] = time.monotonic()
        time.sleep(0.05)  # cleans up: the slot frees after the worker re-sent its waiting call
        job.raise_if_cancelled()

    run_worker(w)
    latencies = []
    for i in range(8):
        job = c.submit("py_cancel", user_id=f"c{i}")
        wait_for(lambda job=job: job["job_id"] in started, 10, "the handler to start")
        c.cancel(job)
        returned = time.monotonic()
        wait_for(lambda job=job: job["job_id"] in seen, 15, "the handler to see the cancel")
        latencies.append(seen[job["job_id"]] - returned)
    assert c.get(job)["status"] == "cancelled"
    print(f"cancel → handler: median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    assert max(latencies) < 0.5, latencies


def test_time_limit_stops_the_handler(server: Server, run_worker) -> None:
    c = server.client
    w = jobd.Worker(server.url)
    reasons: List[str] = []

    @w.handler("py_timeout")
    def handle(job: jobd.JobContext) -> Any:
        job.wait_cancelled(20)
        reasons.append(job.stop_reason or "")
        return "too late"

    run_worker(w)
    by_type = c.submit("py_timeout")  # the type's limit: 1 s
    by_job = c.submit("py_timeout", timeout_seconds=0.3)  # its own
    for job, limit in ((by_type, 1), (by_job, 0.3)):
        failed = c.wait(job, timeout=10)
        assert failed["status"] == "failed" and failed.get("result") is None, failed
        assert f"timed out after {limit:g} s" in failed["error"], failed
    wait_for(lambda: len(reasons) == 2, 5, "the handlers to be stopped")
    assert reasons == ["timed_out", "timed_out"]


def test_routing_by_type(server: Server, run_worker) -> None:
    c = server.client
    w = jobd.Worker(server.url, concurrency=3)
    types: List[str] = []

    @w.handler("py_routing")
    def handle(job: jobd.JobContext) -> Any:
        types.append(job.type)

    other = c.submit("py_orphan")  # a remote type no worker serves
    run_worker(w)
    mine = [c.submit("py_routing") for _ in range(5)]
    builtin = c.submit("noop")  # the built-in workers are claiming meanwhile
    for j in mine + [builtin]:
        assert c.wait(j, timeout=10)["status"] == "completed"
    # Neither the Python worker (type A only) nor the built-in workers took it.
    assert set(types) == {"py_routing"} and len(types) == 5
    orphan = c.get(other)
    assert orphan["status"] == "pending" and orphan["attempts"] == 0 and orphan["worker_id"] is None
    c.cancel(other)


def test_burst_returns_when_nothing_is_left(server: Server) -> None:
    c = server.client
    jobs = [c.submit("py_burst", {"i": i}) for i in range(30)]
    w = jobd.Worker(server.url, concurrency=4)

    @w.handler("py_burst")
    def handle(job: jobd.JobContext) -> Any:
        return job.parameters["i"]

    t0 = time.monotonic()
    assert w.run(burst=True) == 30
    assert time.monotonic() - t0 < 10
    assert [c.get(j)["result"] for j in jobs] == list(range(30))
    assert w.run(burst=True) == 0  # nothing left: returns at once


def test_job_logs(server: Server, run_worker, capsys) -> None:
    c = server.client
    w = jobd.Worker(server.url)

    @w.handler("py_logs")
    def handle(job: jobd.JobContext) -> Any:
        job.log("hello from job.log")
        logging.getLogger("myapp").warning("a warning via %s", "logging")
        print("printed", "line")
        print("no newline yet", end="")
        print(" ... now")
        if job.parameters.get("fail"):
            raise RuntimeError("failed after logging")
        return 1

    logging.getLogger("outside").warning("not a job's")
    run_worker(w)
    done = c.submit("py_logs")
    failed = c.submit("py_logs", {"fail": True})
    assert c.wait(done, timeout=10)["status"] == "completed"
    assert c.wait(failed, timeout=10)["status"] == "failed"
    for job in (done, failed):
        lines = [(x["stream"], x["line"]) for x in c.logs(job)["lines"]]
        assert lines == [("log", "hello from job.log"), ("log", "WARNING myapp: a warning via logging"),
                         ("stdout", "printed line"), ("stdout", "no newline yet ... now")], lines
    assert "printed line" in capsys.readouterr().out  # still printed where it was


def test_freed_slots_take_new_work_at_once(start_server, run_worker) -> None:
    """A slot freed while the waiting call holds none (a job finished with
    nothing left to claim) takes new work within moments, not after the
    waiting call's heartbeat interval (10 s here)."""
    s = start_server("--heartbeat-interval-seconds", "10", "--lease-timeout-seconds", "30")
    c = s.client
    w = jobd.Worker(s.url, concurrency=2)
    started: Dict[str, float] = {}
    release: Dict[str, threading.Event] = {}

    @w.handler("py_b")
    def handle(job: jobd.JobContext) -> Any:
        started[job.id] = time.monotonic()
        gate = release.get(job.parameters.get("gate", ""))
        if gate is not None:
            gate.wait(30)

    release["a"], release["b"] = threading.Event(), threading.Event()
    run_worker(w)
    a = c.submit("py_b", {"gate": "a"}, user_id="f1")
    b = c.submit("py_b", {"gate": "b"}, user_id="f2")
    wait_for(lambda: len(started) == 2, 10, "both to start")  # every slot taken: the waiting call claims none
    release["a"].set()
    c.wait(a, timeout=10)  # its slot is free, and nothing is left to claim
    t0 = time.monotonic()
    more = c.submit("py_b", user_id="f3")
    c.wait(more, timeout=15)
    release["b"].set()
    c.wait(b, timeout=10)
    assert started[more["job_id"]] - t0 < 1.0, started[more["job_id"]] - t0
