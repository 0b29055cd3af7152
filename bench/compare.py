#!/usr/bin/env python3
"""jobd beside its peers, every drain timed the same way.

    cargo build --release && python3 bench/compare.py       # the full run, under 15 minutes
    python3 bench/compare.py --dry-run [--profile debug]    # tiny counts, 1 round: checks the method

What it does, in one run on one throw-away Redis (a `redis-server` it
starts on a free port of 127.0.0.1, no persistence):

- jobd on Redis, jobd on SQLite, jobd's Python package (one worker
  process, `python -m jobd worker --burst`, a no-op handler, against an
  API node on SQLite), the same no-op as an external command (a Python
  process per job, built-in workers), BullMQ (concurrency 50), apalis
  (concurrency 50), Celery (solo pool) and RQ (SimpleWorker x2), in
  alternating order over `COMPARE_ROUNDS` rounds (even rounds in that
  order, odd rounds reversed).
- For each: an empty store, a backlog of no-op jobs filled first, then the
  workers started, and the drain timed by `observer.observe_drain`, the
  same function in this process for every system: one persistent
  connection polling a completion count every 10 ms (the query differs
  per system and is written into the results). jobd is driven here as
  `jobd-bench` drives it: an API node (`jobd serve --workers 0`) filled
  over HTTP, then one `jobd worker` with 64 slots (Redis), or a second
  `jobd serve` running API and 64 workers on the same data dir (SQLite).
- The peers' versions are pinned (those of ../shared/bench-anchors) and
  installed outside the repository, into a cache folder
  (~/.cache/jobd-compare, or a temporary one with COMPARE_FRESH=1); apalis
  is built there from ../shared/bench-anchors/apalis with its Cargo.lock.
- Then `jobd-bench` (bench/main.rs) runs once against the same Redis for
  what only it measures (HTTP latency idle and under load, per-user limit,
  RSS, SSE, wake-up) and as a cross-check of its own drain timings.

Results: bench/results/latest.json, latest.md, latest.svg (a dry run prints
its report and keeps the files only with --out). Every figure is the median of the
rounds with min-max; a ratio is the ratio of the medians, with the range of
the same-round ratios.

Knobs (environment): COMPARE_ROUNDS, COMPARE_JOBD_JOBS, COMPARE_BULL_JOBS,
COMPARE_APALIS_JOBS, COMPARE_CELERY_JOBS, COMPARE_RQ_JOBS, COMPARE_BENCH_JOBS
(jobd-bench's backlog), COMPARE_PY_JOBS and COMPARE_COMMAND_JOBS (the
Python package's worker and the same no-op as a process per job),
COMPARE_PY_CONCURRENCY (their slots, 32), COMPARE_CANCEL_ROUNDS (cancel →
Python handler rounds, 200), COMPARE_POLL_MS, COMPARE_SYSTEMS (comma list of
jobd-redis,jobd-sqlite,jobd-python,jobd-command,bullmq,apalis,celery,rq),
COMPARE_SKIP_JOBD_BENCH=1,
COMPARE_FRESH=1, COMPARE_CACHE, COMPARE_ANCHORS (default ../shared/bench-anchors),
COMPARE_NO_BUILD=1 (use the jobd and jobd-bench already built).
"""
import argparse
import asyncio
import atexit
import datetime
import itertools
import json
import os
import platform
import queue
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import observer  # noqa: E402  (the one drain timer)
from observer import RedisCount, Resp, SqliteCount, observe_drain  # noqa: E402

ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
ANCHORS = os.environ.get("COMPARE_ANCHORS", os.path.join(os.path.dirname(ROOT), "shared", "bench-anchors"))

# The versions measured in ../shared/bench-anchors/README.md.
PIP_PINS = {"rq": "3.0.0", "celery": "5.7.0", "redis": "8.1.0"}
NPM_PINS = {"bullmq": "6.7.0", "ioredis": "6.0.0"}
SYSTEMS = ["jobd-redis", "jobd-sqlite", "jobd-python", "jobd-command", "bullmq", "apalis", "celery", "rq"]
# The Python package's worker (clients/python): slots of its one process.
PY_CONCURRENCY = int(os.environ.get("COMPARE_PY_CONCURRENCY", "32"))
LABELS = {"jobd-redis": "jobd (redis)", "jobd-sqlite": "jobd (sqlite)",
          "jobd-python": f"jobd Python worker x1 (sqlite), concurrency {PY_CONCURRENCY}",
          "jobd-command": f"jobd external command (sqlite), {PY_CONCURRENCY} workers",
          "bullmq": "BullMQ concurrency 50",
          "apalis": "apalis concurrency 50", "celery": "Celery solo pool", "rq": "RQ SimpleWorker x2"}
JOBD_KEYS = ["jobd-redis", "jobd-sqlite", "jobd-python", "jobd-command"]
PEER_KEYS = ["bullmq", "apalis", "celery", "rq"]
JOBD_SLOTS = 64
WIDE = ["--global-max-concurrent-jobs", "1000", "--per-user-max-concurrent-jobs", "1000"]
USERS = 10
N_STATUS = 2000  # peers: status lookups timed after each fill


def env_int(name, default):
    return int(os.environ.get(name, default))


# ---------------------------------------------------------------- processes

PROCS = []  # every process started, killed by process group at exit


def spawn(cmd, log=None, stdout=None, **kw):
    """Starts cmd in a process group of its own (so its children go with
    it at cleanup); stderr (and stdout unless given) go to `log`."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(cmd, stdout=stdout if stdout is not None else out, stderr=out, start_new_session=True,
                         **kw)
    p.log = log
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM, grace=30.0):
    """Sends sig to p's process group, waits up to `grace` s, then kills."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except OSError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)  # stragglers in the group
    except OSError:
        pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    return p.returncode


def wait_exit(p, timeout):
    """Waits for p to exit by itself; kills it past the timeout."""
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p, signal.SIGKILL, 1)
        return None


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    for p in PROCS:
        try:
            p.wait(timeout=10)
        except Exception:
            pass


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def run(cmd, timeout, **kw):
    """subprocess.run with a deadline; raises with the output's tail."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout[-2000:]}\n"
                           f"{p.stderr[-3000:]}")
    return p.stdout


def tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def wait_until(condition, timeout, what, interval=0.02):
    """Polls condition() until true; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def jobd_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBD_")}
    env["RUST_LOG"] = "error"
    return env


# ---------------------------------------------------------------- redis

class RedisServer:
    def __init__(self, tmp):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = spawn(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", tmp], log=os.path.join(tmp, "redis.log"))
        wait_until(lambda: Resp(self.port, timeout=1).call("PING") == "PONG", 15, "redis-server")
        self.conn = Resp(self.port)  # flushes, fills' INFO and the observer's INFO
        self.version = self.conn.call("INFO", "server").decode().split("redis_version:")[1].split()[0]

    def flush(self):
        self.conn.call("FLUSHALL")

    def stop(self):
        try:
            self.conn.call("SHUTDOWN", "NOSAVE")
        except Exception:
            pass
        stop(self.proc, grace=10)


# The remote job type of jobd-python and the command of jobd-command: the
# same no-op in Python, in a warm worker process or as a process per job.
PY_NOOP_TOML = "[job_types.py_noop]\nremote = true\n[job_types.py_cancel]\nremote = true\n"
COMMAND_TOML = ("[job_types.py_command]\ncommand = [{py}, \"-c\", "
                "\"import json, sys; json.load(sys.stdin)\"]\n")


# ---------------------------------------------------------------- jobd over HTTP

def _request(path, body):
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path, len(body), body))


async def _read_response(reader):
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(length)
    return status, body


async def _http_fill(port, n, users, connections, depth, job_type):
    counter = iter(range(n))

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                batch = list(itertools.islice(counter, depth))
                if not batch:
                    return
                writer.write(b"".join(_request(b"/api/v1/jobs", b'{"job_type":"%s","user_id":"user%d"}'
                                               % (job_type.encode(), k % users)) for k in batch))
                await writer.drain()
                for _ in batch:
                    status, body = await _read_response(reader)
                    if not 200 <= status < 300:
                        raise RuntimeError(f"submit answered {status}: {body[:300]!r}")
        finally:
            writer.close()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(connections))), timeout=600)


def http_fill(port, n, users=USERS, connections=8, depth=32, job_type="noop"):
    """Submits n no-op jobs (users round-robin) over `connections` keep-alive
    connections, `depth` requests pipelined on each."""
    asyncio.run(_http_fill(port, n, users, connections, depth, job_type))


class JobdNode:
    """A `jobd serve` node: started, its address read from its first line."""

    def __init__(self, jobd, args, log, cwd):
        self.proc = spawn([jobd, "serve", "--bind", "127.0.0.1:0"] + args, log=log, stdout=subprocess.PIPE,
                          env=jobd_env(), cwd=cwd)
        lines = queue.Queue()

        def read():
            for line in self.proc.stdout:
                lines.put(line.decode(errors="replace").strip())
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        try:
            first = lines.get(timeout=30)
        except queue.Empty:
            first = None
        if not first or not first.startswith("jobd listening on "):
            raise RuntimeError(f"jobd serve did not start: {first!r}\n{tail(log)}")
        self.url = first[len("jobd listening on "):]
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))


# ---------------------------------------------------------------- systems

class System:
    """One system under test. `fill()` puts the backlog in place;
    `start_workers()` starts what drains it (returns the Popen list the
    observer watches); `count()` is the observer's completion count;
    `verify()` an exact count after the drain; `stop()` ends it all."""

    uses_redis = True

    def __init__(self, key, jobs, ctx):
        self.key, self.jobs, self.ctx = key, jobs, ctx
        self.workers, self.others = [], {}
        self.log = os.path.join(ctx.tmp, f"{key}.log")

    def prepare(self, rnd):
        """What comes before the fill and is not measured with it."""

    def after_fill(self, fill):
        """What comes after the fill's Redis counters are read (the peers'
        status lookups)."""

    def stop(self):
        for w in self.workers:
            stop(w)

    # The Redis command that counts completed jobs, for a peer whose count
    # the observer polls and verify() reads once more after the drain.
    COMPLETED = None

    def count(self):
        return RedisCount(self.ctx.redis.port, *self.COMPLETED)

    def verify(self):
        return int(self.ctx.redis.conn.call(*self.COMPLETED))

    def discard(self):
        """Removes what verify() needed."""


class JobdRedis(System):
    def prepare(self, rnd):
        c = self.ctx
        self.store = ["--store", c.redis.url, "--redis-prefix", "bench"]
        self.node = JobdNode(c.jobd, ["--workers", "0"] + self.store + WIDE, self.log, c.tmp)
        self.others = {"jobd API node": [self.node.proc.pid]}

    def fill(self, rnd):
        c = self.ctx
        t = time.perf_counter()
        http_fill(self.node.port, self.jobs)
        elapsed = time.perf_counter() - t
        pending = int(c.redis.conn.call("HGET", "{bench}:counts", "pending") or 0)
        if pending != self.jobs:
            raise RuntimeError(f"jobd (redis): {pending} pending after the fill, not {self.jobs}")
        return {"enqueue_s": elapsed, "method": "HTTP POST /api/v1/jobs, 8 connections x 32 pipelined"}

    def start_workers(self):
        c = self.ctx
        self.workers = [spawn([c.jobd, "worker", "--workers", str(JOBD_SLOTS)] + self.store + WIDE, log=self.log,
                              env=jobd_env(), cwd=c.tmp)]
        return self.workers

    def count(self):
        return RedisCount(self.ctx.redis.port, "HGET", "{bench}:counts", "completed")

    def verify(self):
        r = self.ctx.redis.conn
        failed = int(r.call("HGET", "{bench}:counts", "failed") or 0)
        if failed:
            raise RuntimeError(f"jobd (redis): {failed} jobs failed")
        return int(r.call("ZCARD", "{bench}:done:completed"))

    def stop(self):
        super().stop()
        if getattr(self, "node", None):
            stop(self.node.proc)


class JobdSqlite(System):
    uses_redis = False

    def prepare(self, rnd):
        c = self.ctx
        self.data = tempfile.mkdtemp(prefix=f"sqlite-{rnd}-", dir=c.tmp)
        self.store = ["--data-dir", self.data, "--sqlite-synchronous", "normal"]
        self.node = JobdNode(c.jobd, ["--workers", "0"] + self.store + WIDE, self.log, c.tmp)
        self.others = {"jobd API node": [self.node.proc.pid]}

    def fill(self, rnd):
        t = time.perf_counter()
        http_fill(self.node.port, self.jobs)
        elapsed = time.perf_counter() - t
        self.db = os.path.join(self.data, "jobd.sqlite3")
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            pending = conn.execute("SELECT n FROM status_counts WHERE status = 'pending'").fetchone()[0]
        if pending != self.jobs:
            raise RuntimeError(f"jobd (sqlite): {pending} pending after the fill, not {self.jobs}")
        return {"enqueue_s": elapsed, "method": "HTTP POST /api/v1/jobs, 8 connections x 32 pipelined"}

    def start_workers(self):
        # As jobd-bench: a second node running API and workers together on
        # the same data dir (SQLite: one writing process does the work).
        self.drainer = JobdNode(self.ctx.jobd, ["--workers", str(JOBD_SLOTS)] + self.store + WIDE, self.log,
                                self.ctx.tmp)
        self.workers = [self.drainer.proc]
        return self.workers

    def count(self):
        return SqliteCount(self.db, "SELECT n FROM status_counts WHERE status = 'completed'")

    def verify(self):
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            rows = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
        if rows.get("failed"):
            raise RuntimeError(f"jobd (sqlite): {rows['failed']} jobs failed")
        return rows.get("completed", 0)

    def stop(self):
        super().stop()
        if getattr(self, "node", None):
            stop(self.node.proc)

    def discard(self):
        if getattr(self, "data", None):
            shutil.rmtree(self.data, ignore_errors=True)


class JobdPython(JobdSqlite):
    """The Python package's Worker: one process (`python -m jobd worker
    --burst`, PY_CONCURRENCY slots, a no-op handler) against an API node
    on SQLite (`jobd serve --workers 0`) filled over HTTP as for jobd."""

    JOB_TYPE = "py_noop"

    def config(self):
        return PY_NOOP_TOML

    def prepare(self, rnd):
        c = self.ctx
        self.data = tempfile.mkdtemp(prefix=f"{self.key}-{rnd}-", dir=c.tmp)
        cfg = os.path.join(self.data, "jobd.toml")
        with open(cfg, "w") as f:
            f.write(self.config())
        self.store = ["--data-dir", self.data, "--sqlite-synchronous", "normal", "--config", cfg]
        self.node = JobdNode(c.jobd, ["--workers", "0"] + self.store + WIDE, self.log, c.tmp)
        self.others = {"jobd API node": [self.node.proc.pid]}

    def fill(self, rnd):
        t = time.perf_counter()
        http_fill(self.node.port, self.jobs, job_type=self.JOB_TYPE)
        elapsed = time.perf_counter() - t
        self.db = os.path.join(self.data, "jobd.sqlite3")
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            pending = conn.execute("SELECT n FROM status_counts WHERE status = 'pending'").fetchone()[0]
        if pending != self.jobs:
            raise RuntimeError(f"{self.key}: {pending} pending after the fill, not {self.jobs}")
        return {"enqueue_s": elapsed, "method": "HTTP POST /api/v1/jobs, 8 connections x 32 pipelined"}

    def start_workers(self):
        c = self.ctx
        self.workers = [spawn([c.py, "-m", "jobd", "worker", "jobd_python_worker:worker", "--burst", "--url",
                               self.node.url, "--log-level", "WARNING"], log=self.log,
                              env=dict(os.environ, PYTHONPATH=PEERS, COMPARE_PY_CONCURRENCY=str(PY_CONCURRENCY)),
                              cwd=PEERS)]
        return self.workers

    def stop(self):
        for w in self.workers:
            wait_exit(w, 30)  # --burst: it exits once drained
        if getattr(self, "node", None):
            stop(self.node.proc)


class JobdCommand(JobdPython):
    """The same no-op as an external command (a Python process per job:
    `python -c 'import json, sys; json.load(sys.stdin)'`), run by the
    built-in workers of a second `jobd serve` on the same data dir, as for
    jobd (sqlite), with PY_CONCURRENCY slots."""

    JOB_TYPE = "py_command"

    def config(self):
        return COMMAND_TOML.format(py=json.dumps(self.ctx.py))

    def start_workers(self):
        self.drainer = JobdNode(self.ctx.jobd, ["--workers", str(PY_CONCURRENCY)] + self.store + WIDE, self.log,
                                self.ctx.tmp)
        self.workers = [self.drainer.proc]
        return self.workers

    def stop(self):
        for w in self.workers:
            stop(w)
        if getattr(self, "node", None):
            stop(self.node.proc)


def cancel_latency(ctx, rounds):
    """Cancel → Python handler: a handler that reports nothing spins on
    `job.cancelled` (bench/peers/jobd_python_worker.py:cancel_worker); each
    round submits a job, waits for the handler's start line, cancels, and
    takes the time from the cancel call's return (and from its start) to
    the handler seeing it (CLOCK_MONOTONIC in both processes)."""
    import http.client
    data = tempfile.mkdtemp(prefix="cancel-", dir=ctx.tmp)
    cfg = os.path.join(data, "jobd.toml")
    with open(cfg, "w") as f:
        f.write(PY_NOOP_TOML)
    log = os.path.join(ctx.tmp, "cancel-latency.log")
    node = JobdNode(ctx.jobd, ["--workers", "0", "--data-dir", data, "--sqlite-synchronous", "normal",
                               "--config", cfg], log, ctx.tmp)
    worker = spawn([ctx.py, "-m", "jobd", "worker", "jobd_python_worker:cancel_worker", "--url", node.url,
                    "--log-level", "WARNING"], log=log, stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=PEERS),
                   cwd=PEERS)
    lines = queue.Queue()

    def read():
        for line in worker.stdout:
            lines.put(line.decode(errors="replace").split())
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()

    def expect(word, job_id):
        while True:
            line = lines.get(timeout=30)
            if line is None:
                raise RuntimeError(f"the cancel worker exited:\n{tail(log)}")
            if line[:2] == [word, job_id]:
                return line

    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)

    def post(path, body=b""):
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        out = r.read()
        if r.status >= 300:
            raise RuntimeError(f"POST {path}: {r.status} {out[:300]!r}")
        return json.loads(out)

    from_return, from_start = [], []
    try:
        for _ in range(rounds):
            job_id = post("/api/v1/jobs", b'{"job_type": "py_cancel"}')["job_id"]
            expect("start", job_id)
            t0 = time.monotonic()
            post(f"/api/v1/jobs/cancel/{job_id}")
            t1 = time.monotonic()
            seen = float(expect("seen", job_id)[2])
            from_return.append((seen - t1) * 1000)
            from_start.append((seen - t0) * 1000)
    finally:
        conn.close()
        stop(worker)
        stop(node.proc)
    return {"rounds": rounds, "p50_ms": pct(from_return, 0.5), "p99_ms": pct(from_return, 0.99),
            "max_ms": max(from_return), "from_call_start_p50_ms": pct(from_start, 0.5),
            "from_call_start_p99_ms": pct(from_start, 0.99),
            "method": "a no-report handler spinning on job.cancelled (0.5 ms sleeps); time from the cancel "
                      "call's return to the handler seeing it, CLOCK_MONOTONIC in both processes"}


class Producer:
    """A peer's producer process: fills the backlog, prints {"filled": ..},
    waits for a line on stdin while Redis's counters are read, then times
    status lookups and prints its results as one JSON line."""

    def __init__(self, cmd, log, env=None, cwd=None):
        self.proc = spawn(cmd, log=log, stdout=subprocess.PIPE, stdin=subprocess.PIPE, env=env, cwd=cwd)
        self.lines = queue.Queue()

        def read():
            for line in self.proc.stdout:
                self.lines.put(line.decode(errors="replace").strip())
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def _line(self, timeout, what):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if not line:
            stop(self.proc, signal.SIGKILL, 1)
            raise RuntimeError(f"producer gave no {what}:\n{tail(self.proc.log)}")
        return json.loads(line)

    def filled(self, timeout=600):
        return self._line(timeout, "'filled' line")

    def finish(self, timeout=300):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        out = self._line(timeout, "results")
        if wait_exit(self.proc, 30) != 0:
            raise RuntimeError(f"producer exited with {self.proc.returncode}:\n{tail(self.proc.log)}")
        return out


class BullMQ(System):
    COMPLETED = ("ZCARD", "bull:bench:completed")

    def env(self):
        return dict(os.environ, COMPARE_NODE_DIR=self.ctx.node_dir, COMPARE_REDIS_PORT=str(self.ctx.redis.port))

    def fill(self, rnd):
        self.producer = Producer(["node", os.path.join(PEERS, "bullmq_produce.mjs"), str(self.jobs), str(N_STATUS)],
                                 self.log, env=self.env())
        return dict(self.producer.filled(), method="Queue.add() one by one, awaited; status: getJobState()")

    def after_fill(self, fill):
        out = self.producer.finish()
        self.ctx.found_versions.update({f"npm {k}": v for k, v in out["versions"].items() if k != "node"})
        fill.update(enqueue_ms=out["enqueue_ms"], status_ms=out["status_ms"])

    def start_workers(self):
        self.workers = [spawn(["node", os.path.join(PEERS, "bullmq_worker.mjs"), str(self.jobs), "50"],
                              log=self.log, env=self.env())]
        return self.workers

    def stop(self):
        for w in self.workers:
            wait_exit(w, 30)


class Apalis(System):
    COMPLETED = ("SCARD", "apq:done")

    CONCURRENCY = env_int("COMPARE_APALIS_CONCURRENCY", 50)

    def prepare(self, rnd):
        c = self.ctx
        n = min(N_STATUS, self.jobs)
        self.latency = json.loads(run([c.apalis, "latency", c.redis.url, "lat", str(n)], 300).strip().splitlines()[-1])
        c.redis.flush()

    def fill(self, rnd):
        c = self.ctx
        out = json.loads(run([c.apalis, "push", c.redis.url, "apq", str(self.jobs)], 600).strip().splitlines()[-1])
        return {"enqueue_s": out["push_s"], "latency_summary": self.latency,
                "method": "push() one by one, awaited; latency: a separate run of push_task + fetch_by_id "
                          "before the fill"}

    def start_workers(self):
        c = self.ctx
        self.workers = [spawn([c.apalis, "work", c.redis.url, "apq", str(self.jobs), str(self.CONCURRENCY)],
                              log=self.log)]
        return self.workers

    def stop(self):
        for w in self.workers:
            wait_exit(w, 30)


class Celery(System):
    def env(self):
        return dict(os.environ, COMPARE_REDIS_PORT=str(self.ctx.redis.port), PYTHONPATH=PEERS)

    def fill(self, rnd):
        self.round = rnd
        self.producer = Producer([self.ctx.py, os.path.join(PEERS, "celery_produce.py"), str(self.jobs),
                                  str(N_STATUS)], self.log, env=self.env(), cwd=PEERS)
        return dict(self.producer.filled(),
                    method="noop.delay() one by one; status: AsyncResult(id).state (PENDING: a GET of a missing key)")

    def after_fill(self, fill):
        out = self.producer.finish()
        self.ctx.found_versions.update({f"pip {k}": v for k, v in out["versions"].items() if k != "python"})
        fill.update(enqueue_ms=out["enqueue_ms"], status_ms=out["status_ms"])

    def start_workers(self):
        c = self.ctx
        self.workers = [spawn([os.path.join(c.venv, "bin", "celery"), "-A", "celery_app", "worker", "-l", "WARNING",
                               "--without-gossip", "--without-mingle", "--without-heartbeat", "-P", "solo", "-n",
                               f"w{self.round}@bench"], log=self.log, env=self.env(), cwd=PEERS)]
        return self.workers

    def count(self):
        # The result backend is db 1, where only result keys live.
        return RedisCount(self.ctx.redis.port, "DBSIZE", db=1)

    def verify(self):
        return int(Resp(self.ctx.redis.port, db=1).call("DBSIZE"))

    def stop(self):
        for w in self.workers:
            stop(w, signal.SIGTERM)  # no burst mode: warm shutdown once drained


class RQ(System):
    COMPLETED = ("ZCARD", "rq:finished:bench")

    def env(self):
        return dict(os.environ, PYTHONPATH=PEERS)

    def fill(self, rnd):
        self.round = rnd
        self.producer = Producer([self.ctx.py, os.path.join(PEERS, "rq_produce.py"), str(self.ctx.redis.port),
                                  str(self.jobs), str(N_STATUS)], self.log, env=self.env(), cwd=PEERS)
        return dict(self.producer.filled(), method="Queue.enqueue() one by one; status: Job.fetch(id).get_status()")

    def after_fill(self, fill):
        out = self.producer.finish()
        self.ctx.found_versions.update({f"pip {k}": v for k, v in out["versions"].items() if k != "python"})
        fill.update(enqueue_ms=out["enqueue_ms"], status_ms=out["status_ms"])

    def start_workers(self):
        c = self.ctx
        self.workers = [spawn([os.path.join(c.venv, "bin", "rq"), "worker", "--burst", "--quiet", "-w",
                               "rq.worker.SimpleWorker", "-u", c.redis.url, "-n", f"w{i}-{self.round}", "bench"],
                              log=self.log, env=self.env(), cwd=PEERS) for i in range(2)]
        return self.workers

    def stop(self):
        for w in self.workers:
            wait_exit(w, 30)


CLASSES = {"jobd-redis": JobdRedis, "jobd-sqlite": JobdSqlite, "jobd-python": JobdPython, "jobd-command": JobdCommand,
           "bullmq": BullMQ, "apalis": Apalis, "celery": Celery, "rq": RQ}


def measure(key, jobs, ctx, rnd):
    """One system, one round: empty store, fill, observed drain, verify."""
    system = CLASSES[key](key, jobs, ctx)
    ctx.redis.flush()
    load = loadavg()
    try:
        system.prepare(rnd)
        info0 = ctx.redis.conn.info()
        fill = system.fill(rnd)
        info1 = ctx.redis.conn.info()
        system.after_fill(fill)
        count = system.count()
        try:
            result = observe_drain(jobs, count, system.start_workers, others=system.others,
                                   redis=ctx.redis.conn if system.uses_redis else None, redis_pid=ctx.redis.proc.pid,
                                   poll_s=ctx.poll_s, deadline_s=ctx.deadline_s)
        finally:
            count.close()
    except Exception:
        system.stop()
        print(f"--- {key} log tail:\n{tail(system.log)}", file=sys.stderr)
        raise
    system.stop()
    result.pop("workers")
    try:
        result["verified_completed"] = system.verify()
    finally:
        system.discard()
    result["worker_exit_codes"] = [w.returncode for w in system.workers]
    result.update({"system": key, "round": rnd, "loadavg_before": load, "enqueue_s": fill["enqueue_s"],
                   "enqueue_jobs_per_s": jobs / fill["enqueue_s"], "fill_method": fill["method"]})
    if system.uses_redis:
        result["fill_redis_cpu_us_per_job"] = (info1["cpu_s"] - info0["cpu_s"]) * 1e6 / jobs
        result["fill_redis_commands_per_job"] = (info1["commands"] - info0["commands"] - 1) / jobs
    if "enqueue_ms" in fill:
        result["submit_ms"] = {"p50": pct(fill["enqueue_ms"], 0.5), "p99": pct(fill["enqueue_ms"], 0.99)}
        result["status_ms"] = {"p50": pct(fill["status_ms"], 0.5), "p99": pct(fill["status_ms"], 0.99)}
    elif "latency_summary" in fill:
        s = fill["latency_summary"]
        result["submit_ms"] = {"p50": s["enqueue"]["p50_ms"], "p99": s["enqueue"]["p99_ms"]}
        result["status_ms"] = {"p50": s["status"]["p50_ms"], "p99": s["status"]["p99_ms"]}
    if result["verified_completed"] < jobs:
        raise RuntimeError(f"{key}: the observer counted {jobs} done, but only {result['verified_completed']} are")
    rc = result.get("redis")
    redis_part = f"Redis {rc['cpu_us_per_job']:6.1f} µs/job {rc['commands_per_job']:5.1f} cmds/job" if rc else (
        f"{'(no Redis)':35}")
    print(f"  {LABELS[key]:24} round {rnd}: steady {result['steady_jobs_per_s']:9,.0f}/s  drain "
          f"{result['drain_jobs_per_s']:9,.0f}/s  {redis_part}  worker {result['cpu_us_per_job']['worker']:7.1f} "
          f"µs/job  other load {result['other_load_cores']:.2f} cores", flush=True)
    return result


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))] if values else None


# ---------------------------------------------------------------- installs and builds

def cargo_build(args, cwd, env=None, timeout=1800):
    """cargo build with JSON messages; returns {target name: executable}."""
    out = run(["cargo", "build"] + args + ["--message-format=json-render-diagnostics"], timeout, cwd=cwd, env=env)
    exes = {}
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            exes[msg["target"]["name"]] = msg["executable"]
    return exes


def build_jobd(profile):
    """Builds jobd and jobd-bench (a [[bench]] target) of the profile; with
    COMPARE_NO_BUILD=1 takes the jobd and newest jobd-bench already built."""
    if os.environ.get("COMPARE_NO_BUILD") == "1":
        target = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), profile)
        deps = os.path.join(target, "deps")
        benches = [os.path.join(deps, f) for f in os.listdir(deps) if f.startswith("jobd_bench-")
                   and os.access(os.path.join(deps, f), os.X_OK) and "." not in f]
        if not benches or not os.path.exists(os.path.join(target, "jobd")):
            raise RuntimeError(f"COMPARE_NO_BUILD=1 but no jobd and jobd-bench in {target}")
        return os.path.join(target, "jobd"), max(benches, key=os.path.getmtime)
    flags = ["--release"] if profile == "release" else []
    exes = cargo_build(flags + ["--bench", "jobd-bench", "--bin", "jobd"], ROOT)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    jobd = exes.get("jobd") or os.path.join(target, profile, "jobd")
    if "jobd-bench" not in exes or not os.path.exists(jobd):
        raise RuntimeError(f"cargo did not report jobd-bench and jobd: {exes}")
    return jobd, exes["jobd-bench"]


def install_python(venv):
    py = os.path.join(venv, "bin", "python")
    check = ("import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
             + repr(list(PIP_PINS)) + "}))")
    try:
        if json.loads(run([py, "-c", check], 60)) == PIP_PINS:
            return
    except Exception:
        pass
    if not os.path.exists(py):
        run([sys.executable, "-m", "venv", venv], 300)
    pins = [f"{'celery[redis]' if k == 'celery' else k}=={v}" for k, v in PIP_PINS.items()]
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + pins, 900)


def install_jobd_python(venv):
    """This repository's Python package (clients/python), as a user installs
    it, into the peers' venv; returns its and httpx's versions."""
    py = os.path.join(venv, "bin", "python")
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall", "--no-deps",
         os.path.join(ROOT, "clients", "python")], 900)
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", os.path.join(ROOT, "clients", "python")],
        900)
    check = "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in ['jobd', 'httpx']}))"
    return {f"pip {k}": v for k, v in json.loads(run([py, "-c", check], 60)).items()}


def install_node(node_dir):
    os.makedirs(node_dir, exist_ok=True)

    def installed():
        found = {}
        for name in NPM_PINS:
            try:
                with open(os.path.join(node_dir, "node_modules", name, "package.json")) as f:
                    found[name] = json.load(f)["version"]
            except OSError:
                pass
        return found

    if installed() == NPM_PINS:
        return
    pkg = os.path.join(node_dir, "package.json")
    if not os.path.exists(pkg):
        with open(pkg, "w") as f:
            f.write('{"name": "jobd-compare-peers", "private": true}\n')
    run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--save-exact", "--prefix", node_dir]
        + [f"{k}@{v}" for k, v in NPM_PINS.items()], 900)
    if installed() != NPM_PINS:
        raise RuntimeError(f"npm installed {installed()}, not {NPM_PINS}")


def build_apalis(src_dir, profile):
    """Copies ../shared/bench-anchors/apalis (sources and Cargo.lock) to
    src_dir and builds it there with the lock file (--locked)."""
    anchor = os.path.join(ANCHORS, "apalis")
    if not os.path.exists(os.path.join(anchor, "Cargo.lock")):
        raise RuntimeError(f"apalis's anchor harness not found at {anchor} (set COMPARE_ANCHORS)")
    os.makedirs(src_dir, exist_ok=True)
    for name in ("Cargo.toml", "Cargo.lock"):
        shutil.copy(os.path.join(anchor, name), os.path.join(src_dir, name))
    shutil.copytree(os.path.join(anchor, "src"), os.path.join(src_dir, "src"), dirs_exist_ok=True)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(src_dir, "target"))
    flags = ["--release"] if profile == "release" else []
    exes = cargo_build(flags + ["--locked"], src_dir, env=env)
    with open(os.path.join(src_dir, "Cargo.lock")) as f:
        lock = f.read()
    versions = {}
    for name in ("apalis", "apalis-core", "apalis-redis", "redis", "tokio"):
        part = lock.split(f'name = "{name}"\nversion = "')
        if len(part) > 1:
            versions[f"crate {name}"] = part[1].split('"')[0]
    return exes["apalisbench"], versions


def in_parallel(tasks, seconds):
    """Runs {name: callable} in threads; returns results (and each task's
    seconds in `seconds`), raises the first error."""
    results, errors = {}, {}

    def go(name, fn):
        t = time.monotonic()
        try:
            results[name] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors[name] = e
        seconds[name] = time.monotonic() - t

    threads = [threading.Thread(target=go, args=item, daemon=True) for item in tasks.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3600)
    for name, e in errors.items():
        raise RuntimeError(f"{name}: {e}") from e
    return results


# ---------------------------------------------------------------- jobd-bench

def run_jobd_bench(ctx, backlog, dry):
    out = os.path.join(ctx.tmp, "jobd-bench.json")
    ctx.redis.flush()
    cmd = [ctx.jobd_bench, "--stores", "redis,sqlite", "--backlog", str(backlog), "--redis-url", ctx.redis.url,
           "--jobd", ctx.jobd, "--json", out]
    if dry:  # a check that it runs and its output is read, in seconds (SSE and wake-up take minutes in debug)
        cmd += ["--requests", "20", "--only", "latency,drain"]
    t = time.monotonic()
    run(cmd, 900, env=jobd_env(), cwd=ctx.tmp)
    shown = f"--stores redis,sqlite --backlog {backlog} --redis-url <this run's Redis>" + (
        " --requests 20 --only latency,drain" if dry else "")
    with open(out) as f:
        return {"seconds": time.monotonic() - t, "command": shown, "stores": json.load(f)}


# ---------------------------------------------------------------- summary

def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def aggregate(results):
    """Per system: median and min-max of each figure over the rounds."""
    figures = {
        "steady_jobs_per_s": lambda r: r["steady_jobs_per_s"],
        "drain_jobs_per_s": lambda r: r["drain_jobs_per_s"],
        "startup_s": lambda r: r["startup_s"],
        "redis_cpu_us_per_job": lambda r: r.get("redis", {}).get("cpu_us_per_job"),
        "redis_commands_per_job": lambda r: r.get("redis", {}).get("commands_per_job"),
        "redis_script_calls_per_job": lambda r: r.get("redis", {}).get("script_calls_per_job"),
        "redis_cores": lambda r: r.get("redis", {}).get("cores"),
        "worker_cpu_us_per_job": lambda r: r["cpu_us_per_job"]["worker"],
        "worker_cpu_us_per_job_incl_startup": lambda r: r["cpu_us_per_job"]["worker_incl_startup"],
        "worker_cores": lambda r: r["worker_cores"],
        "api_node_cpu_us_per_job": lambda r: r["cpu_us_per_job"].get("jobd API node"),
        "observer_cpu_us_per_job": lambda r: r["cpu_us_per_job"]["observer"],
        "observer_cores": lambda r: r["observer_cores"],
        "other_load_cores": lambda r: r["other_load_cores"],
        "enqueue_jobs_per_s": lambda r: r["enqueue_jobs_per_s"],
        "fill_redis_cpu_us_per_job": lambda r: r.get("fill_redis_cpu_us_per_job"),
        "fill_redis_commands_per_job": lambda r: r.get("fill_redis_commands_per_job"),
        "submit_p50_ms": lambda r: r.get("submit_ms", {}).get("p50"),
        "submit_p99_ms": lambda r: r.get("submit_ms", {}).get("p99"),
        "status_p50_ms": lambda r: r.get("status_ms", {}).get("p50"),
        "status_p99_ms": lambda r: r.get("status_ms", {}).get("p99"),
    }
    out = {}
    for key in SYSTEMS:
        rows = [r for r in results if r["system"] == key]
        if rows:
            out[key] = {name: summary([get(r) for r in rows]) for name, get in figures.items()}
            out[key]["jobs"] = rows[0]["jobs"]
            out[key]["count_query"] = rows[0]["count_query"]
            commands = {}
            for r in rows:
                for name, v in r.get("redis", {}).get("per_command", {}).items():
                    commands.setdefault(name, []).append(v["usec_per_job"])
            out[key]["redis_usec_per_job_by_command"] = {
                k: statistics.median(v + [0] * (len(rows) - len(v)))
                for k, v in sorted(commands.items(), key=lambda kv: -statistics.median(kv[1]))}
            threads = {}
            for r in rows:
                for name, v in r.get("worker_threads_us_per_job", {}).items():
                    threads.setdefault(name, []).append(v)
            out[key]["worker_us_per_job_by_thread"] = {
                k: statistics.median(v + [0] * (len(rows) - len(v)))
                for k, v in sorted(threads.items(), key=lambda kv: -statistics.median(kv[1]))}
    return out


def ratios(results, agg):
    """jobd (each store) / each peer, steady drain: ratio of the medians,
    and the min-max of the ratios of the same round."""
    out = {}
    for jobd in JOBD_KEYS:
        for peer in PEER_KEYS:
            if jobd not in agg or peer not in agg:
                continue
            rounds = sorted({r["round"] for r in results})
            per_round = []
            for rnd in rounds:
                a = [r for r in results if r["system"] == jobd and r["round"] == rnd]
                b = [r for r in results if r["system"] == peer and r["round"] == rnd]
                if a and b:
                    per_round.append(a[0]["steady_jobs_per_s"] / b[0]["steady_jobs_per_s"])
            out[f"{jobd}/{peer}"] = {
                "ratio_of_medians": agg[jobd]["steady_jobs_per_s"]["median"] / agg[peer]["steady_jobs_per_s"]["median"],
                "same_round_min": min(per_round), "same_round_max": max(per_round), "per_round": per_round}
    return out


def fmt(s, digits=0, unit=""):
    """median (min–max)."""
    if not s:
        return "-"
    f = f"{{:,.{digits}f}}"
    if s["n"] == 1:
        return f.format(s["median"]) + unit
    return f"{f.format(s['median'])}{unit} ({f.format(s['min'])}–{f.format(s['max'])})"


def phases(meta):
    """Where the run's time went, for the report's first paragraph."""
    parts = []
    if meta.get("setup_seconds") is not None:
        tasks = ", ".join(f"{k} {v:.0f} s" for k, v in meta.get("setup_tasks_seconds", {}).items())
        parts.append(f"{meta['setup_seconds']:.0f} s building and installing, in parallel ({tasks})")
    parts.append(f"{meta['rounds_seconds']:.0f} s of rounds")
    if meta.get("jobd_bench_seconds") is not None:
        parts.append(f"{meta['jobd_bench_seconds']:.0f} s of jobd-bench")
    return "; ".join(parts)


def report(doc):
    agg, rat, meta = doc["summary"], doc["ratios"], doc["run"]
    L = []
    add = L.append
    add(f"# jobd beside its peers: {meta['started']}")
    add("")
    add(f"Machine: {meta['machine']['nproc']} cores, {meta['machine']['mem_gib']} GiB, {meta['machine']['cpu']}, "
        f"kernel {meta['machine']['kernel']}. Load average before the run: "
        f"{' / '.join(str(x) for x in meta['loadavg_at_start'])} (1/5/15 min); before the first round, "
        f"after the builds: {' / '.join(str(x) for x in meta['loadavg_before_rounds'])}. "
        f"Run took {meta['seconds']:.0f} s: {phases(meta)}.")
    add("")
    add(f"{meta['rounds']} round{'s' if meta['rounds'] != 1 else ''}, order {' → '.join(meta['order'][0])} (odd rounds reversed); every drain timed by "
        f"`{meta['observer']}` in the benchmark's process (source sha256 {meta['observer_sha256'][:12]}…), one "
        f"persistent connection polling a completion count every {meta['poll_ms']:g} ms. Figures: median "
        f"(min–max) over the rounds. Per-job costs are over the steady window (first → last completion seen).")
    add("")
    add("| system | jobs/round | steady jobs/s | drain jobs/s | startup s | Redis CPU µs/job | Redis cmds/job | "
        "worker CPU µs/job | Redis cores | worker cores | other load, cores |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in SYSTEMS:
        if key not in agg:
            continue
        a = agg[key]
        add(f"| {LABELS[key]} | {a['jobs']:,} | {fmt(a['steady_jobs_per_s'])} | {fmt(a['drain_jobs_per_s'])} | "
            f"{fmt(a['startup_s'], 2)} | {fmt(a['redis_cpu_us_per_job'], 1)} | {fmt(a['redis_commands_per_job'], 1)} | "
            f"{fmt(a['worker_cpu_us_per_job'], 1)} | {fmt(a['redis_cores'], 2)} | {fmt(a['worker_cores'], 2)} | "
            f"{fmt(a['other_load_cores'], 2)} |")
    add("")
    add("Worker CPU is the worker process tree's (jobd on SQLite: the node running API and workers). "
        "Redis commands count those scripts call too (INFO's total_commands_processed), less the observer's polls. "
        "\"Other load\" is the machine's busy time in the window less that of Redis, the workers, the jobd API node "
        "and the observer: processes outside the run. The observer's own CPU, in cores: "
        + ", ".join(f"{LABELS[k]} {fmt(agg[k]['observer_cores'], 3)}" for k in SYSTEMS if k in agg)
        + "; each of its polls is one O(1) command or query.")
    if set(JOBD_KEYS) & set(agg):
        add("")
        add("| jobd | API node CPU µs/job during the drain | worker CPU µs/job incl. startup |")
        add("|---|---:|---:|")
        for key in JOBD_KEYS:
            if key in agg:
                a = agg[key]
                add(f"| {LABELS[key]} | {fmt(a['api_node_cpu_us_per_job'], 1)} | "
                    f"{fmt(a['worker_cpu_us_per_job_incl_startup'], 1)} |")
    if rat:
        add("")
        add("Steady drain, jobd / peer: ratio of the medians (min–max of the same-round ratios).")
        add("")
        peers = [p for p in PEER_KEYS if p in agg]
        add("| | " + " | ".join(f"× {LABELS[p]}" for p in peers) + " |")
        add("|---|" + "---:|" * len(peers))
        for jobd in JOBD_KEYS:
            if jobd in agg:
                cells = []
                for p in peers:
                    r = rat.get(f"{jobd}/{p}")
                    d = 2 if r and r["ratio_of_medians"] < 10 else 1
                    cells.append(f"{r['ratio_of_medians']:.{d}f} ({r['same_round_min']:.{d}f}–{r['same_round_max']:.{d}f})"
                                 if r else "-")
                add(f"| {LABELS[jobd]} | " + " | ".join(cells) + " |")
    add("")
    add("| goal | figure | met |")
    add("|---|---|---|")
    for g in doc["goals"]:
        add(f"| {g['goal']} | {g['figure']} | {'yes' if g['met'] else 'no'} |")
    cancel = doc.get("cancel_latency")
    if cancel:
        add("")
        add(f"Cancel → Python handler ({cancel['rounds']} rounds, {cancel['method']}): p50 {cancel['p50_ms']:.1f} ms, "
            f"p99 {cancel['p99_ms']:.1f} ms, max {cancel['max_ms']:.1f} ms; from the cancel call's start: p50 "
            f"{cancel['from_call_start_p50_ms']:.1f} ms, p99 {cancel['from_call_start_p99_ms']:.1f} ms.")
    add("")
    add("Submission: the fill before each drain (jobd: HTTP from this script, 8 connections × 32 pipelined requests; "
        "the peers: their client library, one call at a time), and latency of single calls (the peers: library calls "
        "from one client, status of 2,000 queued jobs; jobd: from jobd-bench, HTTP from 16 clients).")
    add("")
    add("| system | fill jobs/s | Redis CPU µs/job in the fill | Redis cmds/job in the fill | submit p50 / p99 ms | "
        "status p50 / p99 ms |")
    add("|---|---:|---:|---:|---:|---:|")
    bench = {s["store"]: s for s in (doc.get("jobd_bench") or {}).get("stores", [])}
    for key in SYSTEMS:
        if key not in agg:
            continue
        a = agg[key]
        if key.startswith("jobd"):
            b = bench.get(key.split("-")[1], {})
            sub = b.get("submit_latency")
            st = b.get("status_latency")
            lat_sub = f"{sub['p50_ms']} / {sub['p99_ms']}" if sub else "-"
            lat_st = f"{st['p50_ms']} / {st['p99_ms']}" if st else "-"
        else:
            lat_sub = f"{fmt(a['submit_p50_ms'], 3)} / {fmt(a['submit_p99_ms'], 3)}"
            lat_st = f"{fmt(a['status_p50_ms'], 3)} / {fmt(a['status_p99_ms'], 3)}"
        add(f"| {LABELS[key]} | {fmt(a['enqueue_jobs_per_s'])} | {fmt(a['fill_redis_cpu_us_per_job'], 1)} | "
            f"{fmt(a['fill_redis_commands_per_job'], 1)} | {lat_sub} | {lat_st} |")
    add("")
    add("What each system's observer polls (one query per poll, persistent connection):")
    add("")
    for key in SYSTEMS:
        if key in agg:
            add(f"- {LABELS[key]}: `{agg[key]['count_query']}`")
    add("")
    add("Redis time per job in the drain by command (µs/job, commandstats, median; the scripts' own time includes "
        "the commands they call):")
    add("")
    for key in SYSTEMS:
        if key in agg and agg[key]["redis_usec_per_job_by_command"]:
            top = list(agg[key]["redis_usec_per_job_by_command"].items())[:8]
            add(f"- {LABELS[key]}: " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    add("")
    add("Worker CPU per job in the drain by thread name (µs/job, /proc schedstat, median):")
    add("")
    for key in SYSTEMS:
        if key in agg and agg[key]["worker_us_per_job_by_thread"]:
            top = [(k, v) for k, v in agg[key]["worker_us_per_job_by_thread"].items() if v >= 0.05][:6]
            add(f"- {LABELS[key]}: " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    if doc.get("jobd_bench"):
        add("")
        add(jobd_bench_table(doc["jobd_bench"]))
    add("")
    code = meta.get("jobd", {})
    add(f"jobd measured: built from commit {code.get('commit', '?')[:10]} at {code.get('at', '?')}"
        + (f", with uncommitted changes in {', '.join(c.split()[-1] for c in code['uncommitted_changes_in_the_measured_code'])}"
           if code.get("uncommitted_changes_in_the_measured_code") else ", no uncommitted changes") + ".")
    add("")
    add("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].items())) + ".")
    add("")
    add("Per round (steady jobs/s):")
    add("")
    rounds = sorted({r["round"] for r in doc["results"]})
    add("| system | " + " | ".join(f"round {r}" for r in rounds) + " |")
    add("|---|" + "---:|" * len(rounds))
    for key in SYSTEMS:
        cells = []
        for rnd in rounds:
            rows = [r for r in doc["results"] if r["system"] == key and r["round"] == rnd]
            cells.append(f"{rows[0]['steady_jobs_per_s']:,.0f}" if rows else "-")
        if any(c != "-" for c in cells):
            add(f"| {LABELS[key]} | " + " | ".join(cells) + " |")
    return "\n".join(L) + "\n"


def jobd_bench_table(jb):
    by = {s["store"]: s for s in jb["stores"]}
    stores = [s for s in ("redis", "sqlite") if s in by]

    def get(r, *path):
        for p in path:
            if not isinstance(r, dict) or p not in r:
                return None
            r = r[p]
        return r

    def lat(r, *path):
        v = get(r, *path)
        return f"{v['p50_ms']} / {v['p99_ms']}" if v else "-"

    def num(v, d=0):
        return "-" if v is None else f"{v:,.{d}f}"

    rows = [
        ("steady drain, its own timer (HTTP stats poll every 10 ms), jobs/s",
         lambda r: num(get(r, "drain", "steady_jobs_per_s"))),
        ("its Redis CPU µs/job and commands/job (whole drain)",
         lambda r: f"{num(get(r, 'drain', 'redis_cpu_us_per_job'))} / {num(get(r, 'drain', 'redis_commands_per_job'), 1)}"
         if get(r, "drain", "redis_cpu_us_per_job") is not None else "-"),
        ("steady drain, per-user limit 2 across 100 users (jobs/s)",
         lambda r: num(get(r, "drain_per_user_limit", "steady_jobs_per_s"))),
        ("status p50 / p99 ms while a backlog drains (16 clients)",
         lambda r: lat(r, "drain_under_load", "status_under_load")),
        ("submit p50 / p99 ms while a backlog drains (16 clients)",
         lambda r: lat(r, "drain_under_load", "submit_under_load")),
        ("steady drain meanwhile (jobs/s)", lambda r: num(get(r, "drain_under_load", "steady_jobs_per_s"))),
        ("worker peak RSS MiB (SQLite: the node running API and workers)",
         lambda r: num(get(r, "drain", "worker_peak_rss_mib"), 1)),
        ("idle worker RSS MiB", lambda r: num(get(r, "idle_worker_rss_mib"), 1)),
        ("API node RSS MiB with 1,000 SSE streams", lambda r: num(get(r, "sse", "server_rss_with_streams_mib"), 1)),
        ("completion → stream event p50 / p99 ms", lambda r: lat(r, "wakeup_latency")),
        ("submissions over HTTP, jobs/s: one a call / 1,000 a batch (16 clients)",
         lambda r: f"{num(get(r, 'batch', 'single_jobs_per_s'))} / {num(get(r, 'batch', 'batch_jobs_per_s'))}"
         if get(r, "batch") else "-"),
    ]
    out = [f"jobd-bench (bench/main.rs), once, `jobd-bench {jb['command']}` ({jb['seconds']:.0f} s): its own "
           f"timings, a cross-check, and what only it measures.", "",
           "| figure | " + " | ".join(f"jobd ({s})" for s in stores) + " |", "|---|" + "---:|" * len(stores)]
    for label, f in rows:
        out.append(f"| {label} | " + " | ".join(f(by[s]) for s in stores) + " |")
    return "\n".join(out)


def goals(agg, rat, bench, cancel=None):
    out = []

    def goal(text, figure, met):
        out.append({"goal": text, "figure": figure, "met": bool(met)})

    def ratio(key, floor, text):
        r = rat.get(key)
        if r:
            d = 2 if r["ratio_of_medians"] < 10 else 1
            goal(text, f"{r['ratio_of_medians']:.{d}f}× ({r['same_round_min']:.{d}f}–{r['same_round_max']:.{d}f})",
                 r["ratio_of_medians"] >= floor)

    ratio("jobd-redis/bullmq", 3, "issue 18 goal: jobd (redis) steady drain ≥ 3× BullMQ")
    ratio("jobd-redis/rq", 75, "issue 18 goal: jobd (redis) ≥ 75× RQ")
    ratio("jobd-sqlite/bullmq", 1, "issue 18 goal: jobd (sqlite) ≥ 1× BullMQ (on Redis)")
    ratio("jobd-python/rq", 6, "issue 14: one jobd Python worker process ≥ 6× RQ SimpleWorker x2")
    if cancel:
        goal("issue 14: cancel → Python handler that reports nothing, p99 < 500 ms",
             f"p50 {cancel['p50_ms']:.1f} ms, p99 {cancel['p99_ms']:.1f} ms ({cancel['rounds']} rounds)",
             cancel["p99_ms"] < 500)
    ratio("jobd-redis/bullmq", 2, "issue 4 floor: jobd (redis) ≥ 2× BullMQ")
    ratio("jobd-redis/apalis", 2, "issue 4 floor: jobd (redis) ≥ 2× apalis")
    ratio("jobd-redis/rq", 50, "issue 4 floor: jobd (redis) ≥ 50× RQ SimpleWorker")
    if "jobd-redis" in agg and "bullmq" in agg and agg["bullmq"]["redis_cpu_us_per_job"]:
        a, b = agg["jobd-redis"]["redis_cpu_us_per_job"]["median"], agg["bullmq"]["redis_cpu_us_per_job"]["median"]
        goal("issue 4 floor: Redis CPU per job ≤ 0.5× BullMQ's", f"{a:.1f} / {b:.1f} µs = {a / b:.2f}×", a <= 0.5 * b)
    if "jobd-sqlite" in agg:
        s = agg["jobd-sqlite"]["steady_jobs_per_s"]["median"]
        goal("issue 4 floor: jobd (sqlite) steady drain ≥ 10,000 jobs/s", f"{s:,.0f}", s >= 10_000)
    for store, r in sorted(bench.items()):
        if r.get("batch"):
            b = r["batch"]
            goal(f"issue 17 ({store}, jobd-bench): batch submission over HTTP ≥ 5× single submissions",
                 f"{b['ratio']:.1f}× ({b['batch_jobs_per_s']:,.0f} / {b['single_jobs_per_s']:,.0f} jobs/s)",
                 b["ratio"] >= 5)
        keyed = r.get("drain_key_limits")
        if keyed:
            goal(f"issue 17 ({store}, jobd-bench): drain with {keyed['keys']:,} active keys under a per-key "
                 f"limit ≥ 80 % of the drain without key limits",
                 f"{keyed['ratio'] * 100:.0f} % ({keyed['with_key_limits']['steady_jobs_per_s']:,.0f} / "
                 f"{keyed['without']['steady_jobs_per_s']:,.0f} jobs/s)",
                 keyed["ratio"] >= 0.8)
        load = r.get("drain_under_load")
        if load:
            worst = max(load["status_under_load"]["p99_ms"], load["submit_under_load"]["p99_ms"])
            goal(f"issue 4 floor ({store}, jobd-bench): submit and status p99 < 5 ms while draining", f"{worst} ms",
                 worst < 5)
        if "idle_worker_rss_mib" in r:
            goal(f"issue 4 floor ({store}, jobd-bench): idle worker RSS < 20 MiB",
                 f"{r['idle_worker_rss_mib']:.1f} MiB", r["idle_worker_rss_mib"] < 20)
        if "sse" in r:
            v = r["sse"]["server_rss_with_streams_mib"]
            goal(f"issue 4 floor ({store}, jobd-bench): 1,000 SSE streams < 100 MiB", f"{v:.1f} MiB", v < 100)
        if "wakeup_latency" in r:
            v = r["wakeup_latency"]["p99_ms"]
            goal(f"issue 4 floor ({store}, jobd-bench): wake-up p99 < 10 ms", f"{v} ms", v < 10)
    return out


def svg(doc, path):
    """Steady drain per system: median bar, min-max whisker."""
    agg = doc["summary"]
    keys = [k for k in SYSTEMS if k in agg]
    width, bar, gap, left = 760, 24, 10, 190
    top = max(agg[k]["steady_jobs_per_s"]["max"] for k in keys) or 1
    scale = (width - left - 170) / top
    height = 64 + len(keys) * (bar + gap)
    run_ = doc["run"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="13"><rect width="100%" height="100%" fill="white"/>'
             f'<text x="10" y="20" font-weight="bold">steady drain, no-op jobs/s: median of {run_["rounds"]} '
             f'rounds, whisker min–max</text>'
             f'<text x="10" y="38" font-size="11">one observer, one Redis, one run; {run_["started"]}, '
             f'{run_["machine"]["nproc"]} cores, load average before {run_["loadavg_at_start"][0]}</text>']
    for i, k in enumerate(keys):
        s = agg[k]["steady_jobs_per_s"]
        y = 48 + i * (bar + gap)
        w = max(1, int(s["median"] * scale))
        x0, x1 = left + int(s["min"] * scale), left + int(s["max"] * scale)
        parts.append(f'<text x="10" y="{y + 17}">{LABELS[k]}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w}" height="{bar}" fill="'
                     f'{"#3a6ea5" if k.startswith("jobd") else "#999"}"/>')
        parts.append(f'<line x1="{x0}" y1="{y + bar // 2}" x2="{x1}" y2="{y + bar // 2}" stroke="black"/>')
        parts.append(f'<line x1="{x0}" y1="{y + 6}" x2="{x0}" y2="{y + bar - 6}" stroke="black"/>')
        parts.append(f'<line x1="{x1}" y1="{y + 6}" x2="{x1}" y2="{y + bar - 6}" stroke="black"/>')
        parts.append(f'<text x="{max(x1, left + w) + 8}" y="{y + 17}">{s["median"]:,.0f}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


# ---------------------------------------------------------------- the check

def check_one_observer(results, planned):
    """Every planned drain has a result, and every result was timed by the
    one observer function, in this process, at the same interval."""
    problems = []
    done = {(r["system"], r["round"]) for r in results}
    for item in planned:
        if item not in done:
            problems.append(f"{item} has no result")
    for r in results:
        who = (r.get("observer"), r.get("observer_source_sha256"), r.get("observer_pid"), r.get("poll_ms"))
        want = (observer.OBSERVER_ID, observer.OBSERVER_SHA, os.getpid(), results[0]["poll_ms"])
        if who != want:
            problems.append(f"{r['system']} round {r['round']} was timed by {who}, not {want}")
        if r.get("verified_completed", 0) < r["jobs"]:
            problems.append(f"{r['system']} round {r['round']}: {r.get('verified_completed')} of {r['jobs']} done")
        if r.get("polls", 0) < 1:
            problems.append(f"{r['system']} round {r['round']}: never polled")
    kinds = {r["system"]: r["count_kind"] for r in results}
    for key, kind in kinds.items():
        want = "redis" if CLASSES[key].uses_redis else "sqlite"
        if kind != want:
            problems.append(f"{key} counted over {kind}, not {want}")
    return problems


# ---------------------------------------------------------------- main

def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 1024 / 1024
    except OSError:
        mem = 0
    return {"nproc": os.cpu_count(), "mem_gib": round(mem), "cpu": cpu, "kernel": platform.release()}


def git_state():
    try:
        commit = run(["git", "rev-parse", "HEAD"], 30, cwd=ROOT).strip()
        dirty = run(["git", "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "bench/main.rs"], 30,
                    cwd=ROOT).strip()
        return {"commit": commit, "uncommitted_changes_in_the_measured_code": dirty.splitlines(),
                "at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true",
                    help="tiny job counts, 1 round; checks every drain was timed by the one observer, exits 1 if not")
    ap.add_argument("--profile", choices=["release", "debug"], default="release",
                    help="cargo profile of jobd, jobd-bench and apalis (default release)")
    ap.add_argument("--out", help="folder for latest.json/md/svg (default bench/results; a dry run only prints its report)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(cleanup)
    started = time.monotonic()
    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = loadavg()

    dry = args.dry_run
    tiny = 300
    jobs = {
        "jobd-redis": env_int("COMPARE_JOBD_JOBS", tiny if dry else 50_000),
        "jobd-sqlite": env_int("COMPARE_JOBD_JOBS", tiny if dry else 50_000),
        # The backlog for one Python worker process.
        "jobd-python": env_int("COMPARE_PY_JOBS", tiny if dry else 20_000),
        # A process per job: about 30 ms of CPU each, so a backlog drains
        # in about 10 s at the ~100 jobs/s two cores allow.
        "jobd-command": env_int("COMPARE_COMMAND_JOBS", 100 if dry else 1_000),
        "bullmq": env_int("COMPARE_BULL_JOBS", tiny if dry else 20_000),
        # apalis-redis 1.0 cannot drain a backlog above about 8,000 (one Lua
        # unpack of every due job): 5,000, as in ../shared/bench-anchors.
        "apalis": env_int("COMPARE_APALIS_JOBS", tiny if dry else 5_000),
        "celery": env_int("COMPARE_CELERY_JOBS", tiny if dry else 3_000),
        "rq": env_int("COMPARE_RQ_JOBS", tiny if dry else 3_000),
    }
    rounds = env_int("COMPARE_ROUNDS", 1 if dry else 3)
    systems = [s for s in os.environ.get("COMPARE_SYSTEMS", ",".join(SYSTEMS)).split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            raise SystemExit(f"unknown system {s}; known: {', '.join(SYSTEMS)}")
    bench_jobs = env_int("COMPARE_BENCH_JOBS", tiny if dry else 50_000)
    skip_bench = os.environ.get("COMPARE_SKIP_JOBD_BENCH") == "1"
    out_dir = args.out or (None if dry else os.path.join(HERE, "results"))

    tmp = tempfile.mkdtemp(prefix="jobd-compare-")
    fresh = os.environ.get("COMPARE_FRESH") == "1"
    cache = os.path.join(tmp, "peers") if fresh else os.environ.get(
        "COMPARE_CACHE", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                      "jobd-compare"))
    os.makedirs(cache, exist_ok=True)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.tmp, ctx.poll_s, ctx.deadline_s = tmp, env_int("COMPARE_POLL_MS", 10) / 1000, 300
    ctx.venv, ctx.node_dir = os.path.join(cache, "venv"), os.path.join(cache, "node")
    ctx.py = os.path.join(ctx.venv, "bin", "python")
    ctx.found_versions = {}
    redis = None
    try:
        print(f"building and installing (peers in {cache}) ...", flush=True)
        t = time.monotonic()
        need = set(systems)
        tasks = {"jobd": lambda: build_jobd(args.profile)}
        if need & {"celery", "rq", "jobd-python", "jobd-command"}:
            tasks["python peers"] = lambda: (install_python(ctx.venv),
                                             install_jobd_python(ctx.venv) if need & {"jobd-python"} else {})[1]
        if "bullmq" in need:
            tasks["node peers"] = lambda: install_node(ctx.node_dir)
        if "apalis" in need:
            tasks["apalis"] = lambda: build_apalis(os.path.join(cache, f"apalis-{args.profile}"), args.profile)
        setup_tasks = {}
        built = in_parallel(tasks, setup_tasks)
        ctx.jobd, ctx.jobd_bench = built["jobd"]
        measured_code = git_state()  # what the binaries were just built from
        versions = {"redis-server": None, "python": platform.python_version(),
                    "node": run(["node", "--version"], 30).strip() if "bullmq" in need else None,
                    "rustc": run(["rustc", "--version"], 30).strip().split(" (")[0].replace("rustc ", "")}
        versions.update(built.get("python peers") or {})
        if "apalis" in built:
            ctx.apalis, crates = built["apalis"]
            versions.update(crates)
        setup_s = time.monotonic() - t
        print(f"  ready in {setup_s:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in setup_tasks.items())})",
              flush=True)

        redis = RedisServer(tmp)
        ctx.redis = redis
        versions["redis-server"] = redis.version
        load_rounds = loadavg()
        order = [systems if r % 2 == 0 else systems[::-1] for r in range(rounds)]
        results, planned = [], []
        t_rounds = time.monotonic()
        for rnd in range(rounds):
            print(f"round {rnd} (load average {' '.join(map(str, loadavg()))}): {', '.join(order[rnd])}", flush=True)
            for key in order[rnd]:
                planned.append((key, rnd))
                results.append(measure(key, jobs[key], ctx, rnd))
        rounds_s = time.monotonic() - t_rounds

        cancel = None
        if "jobd-python" in need:
            n = env_int("COMPARE_CANCEL_ROUNDS", 20 if dry else 200)
            print(f"cancel → Python handler latency ({n} rounds) ...", flush=True)
            cancel = cancel_latency(ctx, n)
            print(f"  p50 {cancel['p50_ms']:.1f} ms, p99 {cancel['p99_ms']:.1f} ms, max {cancel['max_ms']:.1f} ms",
                  flush=True)

        bench = None
        if not skip_bench and {"jobd-redis", "jobd-sqlite"} & need:
            print(f"jobd-bench (backlog {bench_jobs:,}) ...", flush=True)
            bench = run_jobd_bench(ctx, bench_jobs, dry)
    finally:
        if redis:
            redis.stop()
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)

    versions.update(ctx.found_versions)
    agg = aggregate(results)
    rat = ratios(results, agg)
    bench_by = {s["store"]: s for s in (bench or {}).get("stores", [])}
    problems = check_one_observer(results, planned)
    pinned = {f"pip {k}": v for k, v in PIP_PINS.items()} | {f"npm {k}": v for k, v in NPM_PINS.items()}
    for k, v in pinned.items():
        if k in ctx.found_versions and ctx.found_versions[k] != v:
            problems.append(f"{k} is {ctx.found_versions[k]}, pinned {v}")
    doc = {
        "run": {
            "started": started_at, "seconds": time.monotonic() - started, "rounds_seconds": rounds_s,
            "setup_seconds": setup_s, "setup_tasks_seconds": setup_tasks,
            "jobd_bench_seconds": bench["seconds"] if bench else None,
            "dry_run": dry, "profile": args.profile, "rounds": rounds, "order": order, "jobs": jobs,
            "poll_ms": ctx.poll_s * 1000, "observer": observer.OBSERVER_ID,
            "observer_sha256": observer.OBSERVER_SHA, "machine": machine(), "loadavg_at_start": load_start,
            "loadavg_before_rounds": load_rounds, "versions": versions, "pinned": pinned,
            "jobd": measured_code, "jobd_slots": JOBD_SLOTS, "observer_check": problems or "passed",
        },
        "summary": agg, "ratios": rat, "goals": goals(agg, rat, bench_by, cancel), "jobd_bench": bench,
        "cancel_latency": cancel, "results": results,
    }
    out_dir = out_dir or tempfile.mkdtemp(prefix="jobd-compare-dry-")  # a dry run's, removed below
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
    text = report(doc)
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(text)
    svg(doc, os.path.join(out_dir, "latest.svg"))
    print(text)
    if dry and not args.out:
        shutil.rmtree(out_dir, ignore_errors=True)
        print(f"{time.monotonic() - started:.0f} s in all")
    else:
        print(f"results in {out_dir}; {time.monotonic() - started:.0f} s in all")
    if problems:
        print("ONE-OBSERVER CHECK FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"one-observer check passed: {len(results)} drains of {len({r['system'] for r in results})} systems, "
          f"all timed by {observer.OBSERVER_ID} in process {os.getpid()} every {ctx.poll_s * 1000:g} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
