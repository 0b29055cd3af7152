#!/usr/bin/env python3
"""Issue 14: a backlog of remote jobs costs the built-in workers no more
than any other jobs they cannot take. One jobd binary, per store: the time
a `jobd worker` takes to drain N built-in no-op jobs of 10 users
- alone in the store (`none`),
- beside R remote jobs of the same users (type `gpu`, `remote = true`,
  which no worker serves), pending and queued first (`remote`),
- beside R no-op jobs of the same users scheduled an hour ahead
  (`scheduled`): the control, a store as big whose extra jobs no claim
  looks at, to tell the cost of routing from the cost of a bigger store.

    python3 bench/probes/routing_backlog.py BINARY [--store sqlite|redis|both]
                                            [--jobs 20000] [--beside 50000]
                                            [--rounds 2]

Each round runs the three, in that order. Each run: a fresh data directory (and a redis-server of its own on a free
port for Redis), `jobd serve --workers 0` to submit through (8 client
threads, 10 users), then one `jobd worker --workers 64`; the drain is
timed from the worker's start to `completed_jobs` reaching N (polled every
20 ms). Prints jobs/s per run and the medians.

Standard library only; binds 127.0.0.1 only; every loop is bounded.
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

from probe_support import free_port, get_json, up, wait_for

CLIENTS = 8
USERS = 10
DRAIN_DEADLINE_S = 300


def submit_all(port, bodies):
    """POSTs every body, from CLIENTS threads on kept-alive connections."""
    errors = []

    def client(part):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for body in part:
                conn.request("POST", "/api/v1/jobs", body=body,
                             headers={"content-type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 201:
                    errors.append(response.status)
                    return
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"submissions failed: {errors[:5]}")


def bodies(job_type, n, **extra):
    return [json.dumps({"job_type": job_type, "user_id": f"user{i % USERS}", **extra})
            for i in range(n)]


BESIDE = {
    "none": lambda n: [],
    "remote": lambda n: bodies("gpu", n),
    "scheduled": lambda n: bodies("noop", n, delay_seconds=3600),
}


def drain(binary, store, jobs, beside, n_beside):
    """Jobs/s of one worker draining `jobs` no-op jobs beside `n_beside`
    jobs of kind `beside` that it does not take."""
    tmp = tempfile.mkdtemp(prefix="routing-backlog-")
    procs = []
    try:
        config = os.path.join(tmp, "jobd.toml")
        with open(config, "w") as f:
            f.write("[job_types.gpu]\nremote = true\n")
        store_args = ["--data-dir", os.path.join(tmp, "data"), "--sqlite-synchronous", "normal"]
        if store == "redis":
            redis_port = free_port()
            procs.append(subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                 "--appendonly", "no", "--dir", tmp],
                stdout=subprocess.DEVNULL))
            store_args = ["--store", f"redis://127.0.0.1:{redis_port}/0", "--redis-prefix", "probe"]
        common = store_args + ["--config", config, "--global-max-concurrent-jobs", "1000",
                               "--per-user-max-concurrent-jobs", "1000"]
        env = dict(os.environ, RUST_LOG="error")
        port = free_port()
        procs.append(subprocess.Popen(
            [binary, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "0"] + common,
            stdout=subprocess.DEVNULL, env=env))
        wait_for("the API node", lambda: up(port), 30, every=0.02)
        extra = BESIDE[beside](n_beside)
        submit_all(port, extra)
        submit_all(port, bodies("noop", jobs))
        started = time.monotonic()
        procs.append(subprocess.Popen(
            [binary, "worker", "--workers", "64"] + common, stdout=subprocess.DEVNULL, env=env))
        stats = wait_for(
            "the drain",
            lambda: (lambda s: s if s["completed_jobs"] >= jobs else None)(
                get_json(port, "/api/v1/jobs/queue/stats", timeout=10)),
            DRAIN_DEADLINE_S, every=0.02)
        elapsed = time.monotonic() - started
        if stats["pending_jobs"] + stats["scheduled_jobs"] != len(extra):
            raise RuntimeError(f"jobs beside were taken: {stats}")
        return jobs / elapsed
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--store", default="both", choices=["sqlite", "redis", "both"])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--beside", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    stores = ["sqlite", "redis"] if args.store == "both" else [args.store]
    for store in stores:
        runs = {beside: [] for beside in BESIDE}
        for round_ in range(1, args.rounds + 1):
            for beside in runs:
                rate = drain(binary, store, args.jobs, beside, args.beside)
                runs[beside].append(rate)
                print(f"{store:6} round {round_}: {args.jobs} built-in jobs beside {beside:9}: "
                      f"{rate:8.0f} jobs/s", flush=True)
        for beside, rates in runs.items():
            print(f"{store:6} beside {beside:9}: median {statistics.median(rates):8.0f} jobs/s "
                  f"({len(rates)} runs: {', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
