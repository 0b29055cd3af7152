"""Fixtures: a real `jobd serve` (the binary of `JOBD_BIN`, default
`<repo>/target/debug/jobd`) on a free port with a scratch data directory,
on SQLite and on Redis (its own `redis-server` on a free port, nothing
persisted). Without redis-server the Redis half is skipped, or fails when
`JOBD_REQUIRE_REDIS=1` (CI)."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import httpx
import pytest

import jobd

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
JOBD_BIN = os.environ.get("JOBD_BIN", os.path.join(REPO, "target", "debug", "jobd"))
if not os.path.isabs(JOBD_BIN):
    JOBD_BIN = os.path.join(REPO, JOBD_BIN)

#: The remote job types every test server declares; each test uses its own
#: so that jobs one test leaves behind never reach another's worker.
REMOTE_TYPES = ["py_auth", "py_a", "py_b", "py_async", "py_fail", "py_progress", "py_cancel", "py_burst", "py_routing",
                "py_orphan", "py_kill", "py_raw", "py_shutdown", "py_logs", "py_limits", "py_forget"]

CONFIG = """\
heartbeat_interval_seconds = 0.5
lease_timeout_seconds = 2
lease_check_interval_seconds = 0.5
""" + "".join(f"\n[job_types.{t}]\nremote = true\n" for t in REMOTE_TYPES) + """
[job_types.py_retry]
remote = true
max_attempts = 3
retry_backoff_seconds = 0.05

[job_types.py_timeout]
remote = true
timeout_seconds = 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    """Polls `condition()` until it returns something truthy, which it
    returns; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Redis:
    def __init__(self, tmp: str) -> None:
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, 10, "redis-server")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


class Server:
    """A `jobd serve` process; `url` its base URL, `client` a jobd.Client."""

    _ids = itertools.count()

    def __init__(self, store: str, tmp: str, redis: Optional[Redis], extra: List[str] = (),
                 env_extra: Optional[Dict[str, str]] = None) -> None:
        if not os.access(JOBD_BIN, os.X_OK):
            pytest.fail(f"no jobd binary at {JOBD_BIN}: run `cargo build` (or set JOBD_BIN)")
        n = next(self._ids)
        self.store = store
        self.dir = os.path.join(tmp, f"server{n}")
        os.makedirs(self.dir)
        config = os.path.join(self.dir, "jobd.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = [JOBD_BIN, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", os.path.join(self.dir, "data"),
                "--config", config] + list(extra)
        if store == "redis":
            assert redis is not None
            # The pipeline on Redis needs an artifact store set explicitly.
            args += ["--store", redis.url(), "--redis-prefix", f"t{n}",
                     "--artifacts", os.path.join(self.dir, "artifacts")]
        self.log_path = os.path.join(self.dir, "serve.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBD_")}
        env.setdefault("RUST_LOG", "warn")
        env.update(env_extra or {})
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "wb"), env=env)
        wait_for(self._healthy, 30, f"jobd serve on {store} ({self.log()})")
        self.client = jobd.Client(self.url)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"jobd serve exited: {self.log()}")
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def stop(self) -> None:
        self.client.close()
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        assert "panicked" not in self.log(), self.log()


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="jobd-pytest-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_root: str) -> Iterator[Redis]:
    if shutil.which("redis-server") is None:
        if os.environ.get("JOBD_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed and JOBD_REQUIRE_REDIS=1")
        pytest.skip("redis-server is not installed")
    r = Redis(tmp_root)
    yield r
    r.stop()


@pytest.fixture(scope="session", params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    return request.param


def _start(store: str, request: pytest.FixtureRequest, tmp_root: str, extra: List[str],
           env_extra: Optional[Dict[str, str]] = None) -> Server:
    redis = request.getfixturevalue("redis_server") if store == "redis" else None
    return Server(store, tmp_root, redis, extra, env_extra)


@pytest.fixture(scope="session")
def server(store: str, request: pytest.FixtureRequest, tmp_root: str) -> Iterator[Server]:
    """One `jobd serve` per store, shared by the tests (each uses its own
    job types): built-in workers running, the remote types declared."""
    s = _start(store, request, tmp_root, [])
    yield s
    s.stop()


@pytest.fixture
def start_server(store: str, request: pytest.FixtureRequest, tmp_root: str) -> Iterator[Callable[..., Server]]:
    """Starts a server of the test's own (other flags), stopped after it."""
    started: List[Server] = []

    def start(*extra: str, env: Optional[Dict[str, str]] = None) -> Server:
        s = _start(store, request, tmp_root, list(extra), env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class Running:
    """A Worker's `run()` in a thread of this process."""

    def __init__(self, worker: jobd.Worker, burst: bool = False) -> None:
        self.worker = worker
        self.result: Dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(burst,), daemon=True)
        self.thread.start()

    def _run(self, burst: bool) -> None:
        try:
            self.result["processed"] = self.worker.run(burst=burst)
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.result["error"] = e

    def stop(self, timeout: float = 15) -> Dict[str, Any]:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker.run() did not return after stop()"
        if "error" in self.result:
            raise self.result["error"]
        return self.result


@pytest.fixture
def run_worker() -> Iterator[Callable[..., Running]]:
    """Starts `worker.run()` in a thread; stops every one after the test."""
    running: List[Running] = []

    def start(worker: jobd.Worker, burst: bool = False) -> Running:
        r = Running(worker, burst)
        running.append(r)
        return r

    yield start
    for r in running:
        if r.thread.is_alive():
            r.stop()


def worker_subprocess(server: Server, tmp: str, source: str, *args: str) -> subprocess.Popen:
    """`python -m jobd worker wmod:worker ARGS` in a process of its own, the
    module written from `source` into a fresh directory (its cwd)."""
    d = tempfile.mkdtemp(dir=tmp)
    with open(os.path.join(d, "wmod.py"), "w") as f:
        f.write(source)
    log = open(os.path.join(d, "worker.log"), "wb")
    env = dict(os.environ, JOBD_URL=server.url, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "jobd", "worker", "wmod:worker", *args], cwd=d, stdout=log,
                         stderr=subprocess.STDOUT, env=env)
    p.log_path = os.path.join(d, "worker.log")  # type: ignore[attr-defined]
    return p


def read_log(p: subprocess.Popen) -> str:
    with open(p.log_path, "rb") as f:  # type: ignore[attr-defined]
        return f.read()[-4000:].decode(errors="replace")
