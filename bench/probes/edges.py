#!/usr/bin/env python3
"""Issue 13's edge figures for one jobd binary, on SQLite and on Redis.

    python3 bench/probes/edges.py BINARY [--store sqlite|redis|both]
                                         [--only conns,listing,sse,metrics]

- conns: the server runs under `ulimit -n 1024`; the probe holds K idle and
  half-sent connections (half each) and times `/health` and a submission on
  fresh connections meanwhile (each with a 30 s time-out).
- listing: 300 jobs with 1 MiB parameters; four concurrent
  `GET /api/v1/jobs?limit=1000` (and with `include=parameters,result`):
  bytes answered, time, and the server's peak RSS.
- sse: bytes of each `job_update` event of a job with 1 MiB parameters.
- metrics (Redis only): time of `GET /metrics` while redis-server is
  stopped with SIGSTOP.

Standard library only; binds 127.0.0.1 only; every loop is bounded.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

from probe_support import free_port

MIB = 1 << 20


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Server:
    """A `jobd serve` on a free port, on SQLite or its own redis-server."""

    def __init__(self, binary, store, nofile=None, env=None):
        self.dir = tempfile.mkdtemp(prefix="jobd-edges-")
        self.port = free_port()
        self.redis = None
        full_env = dict(os.environ, JOBD_BIND=f"127.0.0.1:{self.port}",
                        JOBD_DATA_DIR=f"{self.dir}/data", RUST_LOG="warn")
        if store == "redis":
            self.redis_port = free_port()
            self.redis = subprocess.Popen(
                ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", self.dir],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda: self._redis_up(), 10, "redis-server")
            full_env["JOBD_STORE"] = f"redis://127.0.0.1:{self.redis_port}/0"
        full_env.update(env or {})
        cmd = [binary, "serve"]
        if nofile:
            cmd = ["prlimit", f"--nofile={nofile}:{nofile}", "--"] + cmd
        self.log = open(f"{self.dir}/serve.log", "w")
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self.log, stderr=self.log)
        wait_for(lambda: self.get("/health", timeout=1)[0] == 200, 30, "jobd /health")

    def _redis_up(self):
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def request(self, method, path, body=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def get(self, path, timeout=30):
        try:
            return self.request("GET", path, timeout=timeout)
        except OSError as e:
            return None, str(e).encode()

    def rss(self):
        return rss_bytes(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.redis:
            self.redis.send_signal(signal.SIGCONT)
            self.redis.kill()
            self.redis.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(check, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not come up in {seconds} s")


ERRORS = {}


def timed(fn):
    start = time.monotonic()
    try:
        ok = fn()
    except OSError as e:
        ERRORS[type(e).__name__] = ERRORS.get(type(e).__name__, 0) + 1
        ok = False
    return time.monotonic() - start, ok


def submit_body(**fields):
    return json.dumps({"job_type": "sleep", "parameters": {"seconds": 0}, **fields})


def hold(port, half_sent, until, opened):
    """Keeps one connection open (idle, or with half its headers sent) until
    `until`, opening a new one whenever the server closes it."""
    while time.monotonic() < until:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.1)
            continue
        with s:
            opened.append(1)
            if half_sent:
                s.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(max(0.1, until - time.monotonic()))
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass


def probe_conns(binary, store, held):
    server = Server(binary, store, nofile=1024)
    try:
        threading.stack_size(256 * 1024)
        opened = []
        until = time.monotonic() + 35
        holders = [threading.Thread(target=hold, args=(server.port, i % 2 == 1, until, opened),
                                    daemon=True) for i in range(held)]
        for t in holders:
            t.start()
        time.sleep(5)  # let the holders connect before probing
        health, submits = [], []
        end = time.monotonic() + 25
        while time.monotonic() < end:
            health.append(timed(lambda: server.get("/health")[0] == 200))
            submits.append(timed(lambda: server.request(
                "POST", "/api/v1/jobs", submit_body())[0] == 201))
            time.sleep(0.5)
        for t in holders:
            t.join(timeout=max(0.1, until - time.monotonic() + 10))
        alive = server.proc.poll() is None and server.get("/health", timeout=10)[0] == 200

        def summary(samples):
            times = [t for t, _ in samples]
            failed = sum(1 for _, ok in samples if not ok)
            return (f"median {statistics.median(times):.2f} s, max {max(times):.2f} s, "
                    f"{failed}/{len(samples)} failed")
        print(f"  conns  {store:6} {held} held open (opened {len(opened)} in 35 s): "
              f"/health {summary(health)}; submit {summary(submits)}; alive after: {alive}; "
              f"client errors {ERRORS or 'none'}")
        ERRORS.clear()
    finally:
        server.stop()


def probe_listing(binary, store):
    server = Server(binary, store, env={"JOBD_MAX_BODY_BYTES": str(2 * MIB),
                                        "JOBD_WORKERS": "0"})
    try:
        blob = "x" * MIB
        for _ in range(300):
            status, body = server.request("POST", "/api/v1/jobs",
                                          json.dumps({"job_type": "sleep",
                                                      "parameters": {"seconds": 0, "blob": blob}}))
            assert status == 201, body[:200]
        base = server.rss()
        for path in ["/api/v1/jobs?limit=1000", "/api/v1/jobs?limit=1000&include=parameters,result"]:
            peak = [server.rss()]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak.append(server.rss())
                    time.sleep(0.01)
            sampler = threading.Thread(target=sample)
            sampler.start()
            sizes, start = [], time.monotonic()
            threads = [threading.Thread(target=lambda: sizes.append(len(server.request("GET", path, timeout=120)[1])))
                       for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.monotonic() - start
            stop.set()
            sampler.join()
            print(f"  listing {store:6} {path.split('?')[1]:40} bytes {max(sizes):>11,} "
                  f"4 calls {took:5.2f} s, RSS base {base / MIB:6.1f} MiB peak {max(peak) / MIB:7.1f} MiB")
    finally:
        server.stop()


def probe_sse(binary, store):
    server = Server(binary, store, env={"JOBD_MAX_BODY_BYTES": str(2 * MIB)})
    try:
        status, body = server.request("POST", "/api/v1/jobs", json.dumps(
            {"job_type": "sleep", "parameters": {"seconds": 2, "steps": 10, "blob": "x" * MIB}}))
        assert status == 201, body[:200]
        job_id = json.loads(body)["job_id"]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", f"/api/v1/jobs/status/{job_id}/stream")
        resp = conn.getresponse()
        events, event, size = [], None, 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = resp.readline()
            if not line:
                break
            size += len(line)
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line == b"\n":
                events.append((event, size))
                if event in ("job_complete", "error"):
                    break
                event, size = None, 0
        conn.close()
        updates = [n for e, n in events if e == "job_update"]
        print(f"  sse    {store:6} first event {events[0][1]:,} B; job_update events after it: "
              f"{len(updates) - 1}, median {statistics.median(updates[1:]) if len(updates) > 1 else 0:,} B; "
              f"job_complete {dict(events).get('job_complete', 0):,} B")
    finally:
        server.stop()


def probe_metrics(binary):
    server = Server(binary, "redis")
    try:
        took_up, _ = timed(lambda: server.get("/metrics")[0] == 200)
        server.redis.send_signal(signal.SIGSTOP)
        try:
            results = []
            for _ in range(3):
                start = time.monotonic()
                status, body = server.get("/metrics")
                up = [line for line in body.decode(errors="replace").splitlines()
                      if line.startswith("jobd_store_up")]
                results.append((time.monotonic() - start, status, up))
        finally:
            server.redis.send_signal(signal.SIGCONT)
        shown = "; ".join(f"{t:.2f} s {s} {' '.join(u)}" for t, s, u in results)
        print(f"  metrics redis  up: {took_up:.2f} s; paused: {shown}")
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--store", default="both")
    parser.add_argument("--only", default="conns,listing,sse,metrics")
    parser.add_argument("--held", default="1000,3000")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stores = ["sqlite", "redis"] if args.store == "both" else [args.store]
    only = args.only.split(",")
    print(f"{args.binary}")
    for store in stores:
        if "conns" in only:
            for held in map(int, args.held.split(",")):
                probe_conns(args.binary, store, held)
        if "listing" in only:
            probe_listing(args.binary, store)
        if "sse" in only:
            probe_sse(args.binary, store)
    if "metrics" in only and "redis" in stores:
        probe_metrics(args.binary)


if __name__ == "__main__":
    main()
