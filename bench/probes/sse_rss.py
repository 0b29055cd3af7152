#!/usr/bin/env python3
"""RSS of a `jobd serve` before, during and after thousands of SSE streams.

Starts a release `jobd serve --workers 0` on 127.0.0.1 (on a SQLite file in
a temporary directory, or on a `redis-server` of its own on a free port),
submits `--jobs` jobs (they stay pending: no workers), and reads the
server's resident memory (VmRSS of /proc/PID/status):

- baseline: after the jobs are stored, before any stream;
- peak: the highest VmRSS sampled (every 100 ms) while `--streams` SSE
  streams (`GET /api/v1/jobs/status/{id}/stream`, spread evenly over the
  jobs) are opened in concurrent batches of `--batch` and held, each until
  its first `job_update` event arrived; with it the kernel's high-water mark
  (VmHWM);
- after: `--settle` seconds (60) after every stream was closed by the
  client, with the samples every 10 s on the way.

It also counts the server's SQLite connections (its `-wal` descriptors) and
threads at each point, and the `cache_size` of /queue/stats (the jobs the
process watches) after the streams close.

Python 3.11 standard library only. Every wait has a deadline.

    python3 bench/probes/sse_rss.py --jobd target/release/jobd --store sqlite
    python3 bench/probes/sse_rss.py --jobd /work/old-bin/jobd --store redis

Prints one JSON object (with --json FILE also written there).
"""
import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from probe_support import free_port

MiB = 1024 * 1024


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def rss_mib(pid):
    return status_kib(pid, "VmRSS") / 1024


def wal_descriptors(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").endswith("-wal"):
                n += 1
        except OSError:
            pass
    return n


def threads(pid):
    return status_kib(pid, "Threads")


def http_json(url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def start_redis(workdir):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def start_jobd(jobd, store, workdir, redis_url, env_extra):
    args = [jobd, "serve", "--bind", "127.0.0.1:0", "--workers", "0",
            "--data-dir", os.path.join(workdir, "data")]
    if store == "redis":
        args += ["--store", redis_url, "--redis-prefix", "rssprobe"]
    env = dict(os.environ, RUST_LOG="warn", **env_extra)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, text=True)
    line = proc.stdout.readline()
    m = re.match(r"jobd listening on (\S+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"jobd did not start: {line!r}")
    return proc, m.group(1)


async def open_stream(host, port, job_id, timeout):
    """Opens one stream and waits for its first event; returns the writer."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.write(
        f"GET /api/v1/jobs/status/{job_id}/stream HTTP/1.1\r\nHost: {host}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    seen = b""
    deadline = time.monotonic() + timeout
    while b"event: job_update" not in seen and b"event:job_update" not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no first event")
        chunk = await asyncio.wait_for(reader.read(65536), left)
        if not chunk:
            raise ConnectionError(f"closed: {seen[:200]!r}")
        seen += chunk
    return reader, writer


async def sample_peak(pid, stop, out):
    while not stop.is_set():
        out["peak_rss_mib"] = max(out.get("peak_rss_mib", 0), rss_mib(pid))
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass


async def streams_phase(pid, base_url, ids, args, out):
    host, port = re.match(r"http://([^:/]+):(\d+)", base_url).groups()
    port = int(port)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_peak(pid, stop, out))
    opened = []
    failures = 0
    started = time.monotonic()
    for first in range(0, args.streams, args.batch):
        if time.monotonic() - started > args.open_deadline:
            raise RuntimeError("opening the streams took too long")
        batch = [ids[n % len(ids)] for n in range(first, min(first + args.batch, args.streams))]
        results = await asyncio.gather(
            *(open_stream(host, port, job, 60) for job in batch), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                failures += 1
            else:
                opened.append(r)
    out["streams_opened"] = len(opened)
    out["streams_failed"] = failures
    out["open_seconds"] = round(time.monotonic() - started, 1)
    # Hold them all a moment, as clients would.
    await asyncio.sleep(args.hold)
    out["rss_all_open_mib"] = round(rss_mib(pid), 1)
    out["read_connections_all_open"] = wal_descriptors(pid) if args.store == "sqlite" else None
    out["threads_all_open"] = threads(pid)
    stop.set()
    await sampler
    for _, writer in opened:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in opened), return_exceptions=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobd", required=True, help="the jobd binary (release)")
    p.add_argument("--store", choices=["sqlite", "redis"], required=True)
    p.add_argument("--streams", type=int, default=5000)
    p.add_argument("--jobs", type=int, default=250)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--hold", type=float, default=5.0, help="seconds all streams stay open")
    p.add_argument("--settle", type=int, default=60, help="seconds measured after closing")
    p.add_argument("--open-deadline", type=float, default=300.0)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for jobd")
    p.add_argument("--label", default="")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.streams + 100:
        sys.exit(f"the open-file limit ({hard}) is below {args.streams} streams")

    env_extra = dict(e.split("=", 1) for e in args.env)
    workdir = tempfile.mkdtemp(prefix="sse-rss-")
    redis = jobd = None
    out = {"label": args.label, "jobd": args.jobd, "store": args.store,
           "streams": args.streams, "jobs": args.jobs, "env": env_extra}
    try:
        redis_url = None
        if args.store == "redis":
            redis, redis_url = start_redis(workdir)
        jobd, url = start_jobd(args.jobd, args.store, workdir, redis_url, env_extra)
        pid = jobd.pid
        ids = []
        for n in range(args.jobs):
            job = http_json(f"{url}/api/v1/jobs",
                            {"job_type": "noop", "user_id": f"u{n % 10}", "parameters": {"n": n}})
            ids.append(job["job_id"])
        time.sleep(3)
        out["baseline_rss_mib"] = round(rss_mib(pid), 1)
        out["read_connections_baseline"] = wal_descriptors(pid) if args.store == "sqlite" else None
        out["threads_baseline"] = threads(pid)
        asyncio.run(streams_phase(pid, url, ids, args, out))
        out["peak_rss_mib"] = round(out["peak_rss_mib"], 1)
        closed = time.monotonic()
        series = []
        for t in range(0, args.settle + 1, 10):
            while time.monotonic() < closed + t:
                time.sleep(min(0.5, closed + t - time.monotonic()))
            series.append([t, round(rss_mib(pid), 1)])
        out["after_series_mib"] = series
        out["after_rss_mib"] = series[-1][1]
        out["hwm_mib"] = round(status_kib(pid, "VmHWM") / 1024, 1)
        out["read_connections_after"] = wal_descriptors(pid) if args.store == "sqlite" else None
        out["threads_after"] = threads(pid)
        out["cache_size_after"] = http_json(f"{url}/api/v1/jobs/queue/stats").get("cache_size")
    finally:
        for proc in (jobd, redis):
            if proc is not None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(out)
    print(text)
    if args.json:
        with open(args.json, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
