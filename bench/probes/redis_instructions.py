#!/usr/bin/env python3
"""Redis's work per job in a drain of built-in no-op jobs, counted in
instructions (valgrind's callgrind), so that two binaries compare on a
machine whose CPU time swings with other load. Also Redis commands per job.

    python3 bench/probes/redis_instructions.py BINARY [BINARY ...]
                                               [--jobs 5000] [--rounds 2]

Per run: redis-server under `valgrind --tool=callgrind` on a free port of
127.0.0.1; `jobd serve --workers 0` (the API node) submits JOBS no-op jobs
of 10 users; the counters are zeroed (callgrind_control -z) and
commandstats reset; one `jobd worker --workers 64` drains them; the
counters are dumped once `completed_jobs` reaches JOBS. Instructions per
job = the dump's total / JOBS. Binaries alternate within each round.

Standard library only; binds 127.0.0.1 only; every loop is bounded.
"""

import argparse
import glob
import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading

from probe_support import free_port, get_json, up, wait_for

USERS = 10
CLIENTS = 8


def submit(port, n):
    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for i in range(k, n, CLIENTS):
                body = json.dumps({"job_type": "noop", "user_id": f"user{i % USERS}"})
                conn.request("POST", "/api/v1/jobs", body=body,
                             headers={"content-type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 201:
                    raise RuntimeError(f"submission answered {response.status}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def total_calls(port):
    """Commands served, from INFO commandstats (EVALSHA and the rest)."""
    calls = 0
    for line in redis_cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            fields = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
            calls += int(fields["calls"])
    return calls


def run(binary, jobs):
    tmp = tempfile.mkdtemp(prefix="redis-instr-")
    procs = []
    try:
        redis_port = free_port()
        redis = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.%p",
             "redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(redis)
        wait_for("redis-server", lambda: subprocess.run(
            ["redis-cli", "-p", str(redis_port), "PING"], capture_output=True,
            text=True).stdout.strip() == "PONG", 120, 0.2)
        common = ["--store", f"redis://127.0.0.1:{redis_port}/0", "--redis-prefix", "probe",
                  "--global-max-concurrent-jobs", "1000", "--per-user-max-concurrent-jobs", "1000"]
        env = dict(os.environ, RUST_LOG="error")
        port = free_port()
        procs.append(subprocess.Popen(
            [binary, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "0"] + common,
            stdout=subprocess.DEVNULL, env=env))
        wait_for("the API node", lambda: up(port), 120, 0.2)
        submit(port, jobs)
        subprocess.run(["callgrind_control", "-z", str(redis.pid)], check=True,
                       capture_output=True, timeout=120)
        calls_before = total_calls(redis_port)
        procs.append(subprocess.Popen([binary, "worker", "--workers", "64"] + common,
                                      stdout=subprocess.DEVNULL, env=env))
        wait_for("the drain", lambda: get_json(port, "/api/v1/jobs/queue/stats")["completed_jobs"] >= jobs,
                 1800, 0.2)
        calls = total_calls(redis_port) - calls_before
        subprocess.run(["callgrind_control", "-d", str(redis.pid)], check=True,
                       capture_output=True, timeout=120)
        dumps = sorted(glob.glob(f"{tmp}/callgrind.{redis.pid}.*"), key=os.path.getmtime)
        totals = None
        for line in open(dumps[-1]):
            if line.startswith(("summary:", "totals:")):
                totals = int(line.split()[1])
        return totals / jobs, calls / jobs
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = {b: [] for b in args.binaries}
    for round_ in range(1, args.rounds + 1):
        for binary in args.binaries:
            instructions, commands = run(os.path.abspath(binary), args.jobs)
            results[binary].append((instructions, commands))
            print(f"round {round_} {binary}: {instructions:,.0f} Redis instructions/job, "
                  f"{commands:.2f} commands/job", flush=True)
    for binary, runs in results.items():
        print(f"{binary}: median {statistics.median(r[0] for r in runs):,.0f} instructions/job, "
              f"{statistics.median(r[1] for r in runs):.2f} commands/job ({len(runs)} runs)")


if __name__ == "__main__":
    main()
