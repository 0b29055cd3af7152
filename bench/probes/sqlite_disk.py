#!/usr/bin/env python3
"""SQLite disk space before, at peak and after retention of many jobs.

Starts `jobd serve` (release binary, SQLite on a scratch data dir, bound to
127.0.0.1) with retention of 1 s but no cleanup pass for a day, submits
--jobs no-op jobs with --param-bytes of parameters each through many
keep-alive connections, waits until all have completed, then starts a
`jobd worker` on the same data dir: its start-up cleanup deletes every job
(and, where the binary does, gives the space back) while `serve` keeps
running, so the write-ahead log is measured as a running node keeps it.
From 5 s before that cleanup until it ends, --probe-clients submit jobs one
after another (10 ms apart) to `serve` and their latency is recorded (the worker's writes
hold the file's write lock, so a long give-back step would show there).

Reports the database file and its write-ahead log (`-wal`) at start, at
their peak, when every job has completed, and once the sizes settle after
the cleanup (unchanged for 15 s); the cleanup's log line (and the give-back's, with its longest
step); submit latency during the cleanup.

    python3 bench/probes/sqlite_disk.py --jobd /work/old-bin/jobd --label before
    python3 bench/probes/sqlite_disk.py --jobd target/release/jobd --label after

Python 3.11 standard library only. Every wait is bounded.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20

# Seconds the probe clients submit before the cleanup starts (the baseline).
BASELINE_S = 5

# Each probe client's pause between two submissions (about 100 a second
# each), so that the probes measure rather than load.
PROBE_PAUSE_S = 0.01


def sizes(data_dir):
    def size(name):
        try:
            return os.path.getsize(os.path.join(data_dir, name))
        except FileNotFoundError:
            return 0

    return size("jobd.sqlite3"), size("jobd.sqlite3-wal")


def start(jobd, args, ready_prefix, messages=()):
    """Starts jobd; returns the process, the rest of its first line and its
    logs (read on, so that it never blocks on a full pipe)."""
    env = dict(os.environ, RUST_LOG="info,tower_http=warn")
    proc = subprocess.Popen(
        [jobd, *args, "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    first = proc.stdout.readline().strip()
    if not first.startswith(ready_prefix):
        proc.kill()
        sys.exit(f"unexpected first line from jobd {args[0]}: {first!r}")
    # Keep draining stdout so the process never blocks on it.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, first[len(ready_prefix):].strip(), Logs(proc, set(messages))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Logs:
    """The JSON log lines of a process's stderr whose message is wanted."""

    def __init__(self, proc, messages):
        self.found = {}
        self.lines = []
        self.cond = threading.Condition()
        self.messages = messages
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            fields = entry.get("fields", entry)
            message = fields.get("message")
            with self.cond:
                self.lines = self.lines[-100:] + [line.rstrip()]
                if message in self.messages and message not in self.found:
                    self.found[message] = {"at": time.monotonic(), **fields}
                    self.cond.notify_all()

    def wait(self, message, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while message not in self.found:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.found[message]


class Client:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=60)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")


def submit_all(host, port, jobs, clients, param_bytes):
    filler = "x" * param_bytes
    errors = []
    per_client = [jobs // clients + (1 if i < jobs % clients else 0) for i in range(clients)]

    def run(index, count):
        client = Client(host, port)
        for n in range(count):
            body = {
                "job_type": "noop",
                "user_id": f"u{(index * 7 + n) % 100}",
                "parameters": {"filler": filler},
            }
            status, text = client.request("POST", "/api/v1/jobs", body)
            if status != 201:
                errors.append((status, text[:200]))
                if len(errors) > 100:
                    return

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(per_client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3600)
    if errors:
        sys.exit(f"{len(errors)} submissions failed, first: {errors[0]}")


def stats(client):
    status, text = client.request("GET", "/api/v1/jobs/queue/stats")
    return json.loads(text) if status == 200 else {}


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobd", default="target/release/jobd")
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--param-bytes", type=int, default=1024)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--probe-clients", type=int, default=4)
    parser.add_argument("--label", default="")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--keep-dir", action="store_true", help="keep the data dir (printed)")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="jobd-disk-")
    common = [
        "--data-dir", data_dir,
        "--completed-retention-seconds", "1",
        "--failed-retention-seconds", "1",
        "--cleanup-interval-seconds", "86400",
        "--global-max-concurrent-jobs", str(args.workers * 2),
        "--per-user-max-concurrent-jobs", str(args.workers * 2),
    ]
    serve, url, _ = start(
        args.jobd,
        ["serve", "--bind", "127.0.0.1:0", "--workers", str(args.workers), *common],
        "jobd listening on ",
    )
    host, port = url.removeprefix("http://").rsplit(":", 1)
    port = int(port)
    result = {"label": args.label, "jobd": args.jobd, "jobs": args.jobs,
              "param_bytes": args.param_bytes}
    worker = None
    try:
        time.sleep(0.5)
        result["start"] = sizes(data_dir)

        peak = {"file": 0, "wal": 0, "sum": 0}
        sampling = threading.Event()

        def sample():
            # Bounded by the probe's own end (the event), at most 3 h.
            for _ in range(3 * 3600 * 10):
                if sampling.is_set():
                    return
                file, wal = sizes(data_dir)
                peak["file"] = max(peak["file"], file)
                peak["wal"] = max(peak["wal"], wal)
                peak["sum"] = max(peak["sum"], file + wal)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        t0 = time.monotonic()
        submit_all(host, port, args.jobs, args.clients, args.param_bytes)
        result["submit_s"] = round(time.monotonic() - t0, 1)
        client = Client(host, port)
        deadline = time.monotonic() + 1800
        while stats(client).get("completed_jobs", 0) < args.jobs:
            if time.monotonic() > deadline:
                sys.exit("the jobs did not complete within 30 min")
            time.sleep(0.5)
        result["run_s"] = round(time.monotonic() - t0, 1)
        result["all_completed"] = sizes(data_dir)
        time.sleep(1.5)  # every job is past its 1 s retention

        # Cleanup by a second process while serve keeps running and answers.
        latencies = []
        probing = threading.Event()

        def probe():
            c = Client(host, port)
            for _ in range(1_000_000):
                if probing.is_set():
                    return
                t = time.monotonic()
                status, _ = c.request("POST", "/api/v1/jobs", {"job_type": "noop"})
                latencies.append((time.monotonic() - t, status, t))
                time.sleep(PROBE_PAUSE_S)

        probes = [threading.Thread(target=probe, daemon=True) for _ in range(args.probe_clients)]
        for p in probes:
            p.start()
        # The same requests with no cleanup running, for comparison.
        time.sleep(BASELINE_S)
        cleanup_start = time.monotonic()
        worker, _, logs = start(
            args.jobd,
            ["worker", "--workers", "1", *common],
            "jobd worker ",
            {"cleanup pass", "gave disk space back"},
        )
        passed = logs.wait("cleanup pass", 1800)
        probing.set()
        for p in probes:
            p.join(timeout=70)
        if passed is None:
            sys.exit("no cleanup pass within 30 min:\n" + "\n".join(logs.lines[-20:]))
        result["cleanup_s"] = round(passed["at"] - cleanup_start, 2)
        result["cleanup_log"] = {k: v for k, v in passed.items() if k != "at"}
        gave = logs.found.get("gave disk space back")
        if gave:
            result["give_back_log"] = {k: v for k, v in gave.items() if k != "at"}

        # Settled: the same sizes for 15 s (longer than the 10 s between
        # heartbeats, the writes of an otherwise idle node), at most 300 s.
        # Each change is kept: the log shrinks in steps as it starts over.
        last, steady_since, changes = None, time.monotonic(), []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            now = sizes(data_dir)
            if now != last:
                last, steady_since = now, time.monotonic()
                changes.append((round(steady_since - passed["at"], 1), *now))
            elif time.monotonic() - steady_since >= 15:
                break
            time.sleep(0.2)
        result["after_changes"] = changes[-100:]
        result["after"] = last
        sampling.set()
        sampler.join(timeout=5)
        result["peak"] = peak

        # (seconds taken, status, sent at: s since the cleanup started)
        latencies = [(took, status, t - cleanup_start) for took, status, t in latencies]

        def summary(window):
            took = [s for s, _, _ in window]
            return {
                "requests": len(took),
                "non_201": sum(1 for _, status, _ in window if status != 201),
                "p50_ms": round(1000 * statistics.median(took), 2) if took else None,
                "p99_ms": round(1000 * percentile(took, 0.99), 2) if took else None,
                "max_ms": round(1000 * max(took), 2) if took else None,
                # The slowest five: (ms, s since the worker was started).
                "slowest": [(round(1000 * s, 1), round(at, 2))
                            for s, _, at in sorted(window, reverse=True)[:5]],
            }

        result["submit_before_cleanup"] = summary([x for x in latencies if x[2] < 0])
        result["submit_during_cleanup"] = summary([x for x in latencies if x[2] >= 0])
        if gave and "took_ms" in gave:
            # Requests sent while the give-back ran (it ended when it logged).
            end = gave["at"] - cleanup_start
            begin = end - gave["took_ms"] / 1000
            result["submit_during_give_back"] = summary(
                [x for x in latencies if begin <= x[2] <= end])
    finally:
        if worker is not None:
            stop(worker)
        stop(serve)
        if args.keep_dir:
            print(f"data dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    def mib(pair):
        return f"{pair[0] / MIB:.1f} + {pair[1] / MIB:.1f}"

    print(f"{args.label or args.jobd}: {args.jobs} jobs of {args.param_bytes} B parameters "
          f"(submitted in {result['submit_s']} s, all completed at {result['run_s']} s)")
    print(f"  file + WAL MiB: start {mib(result['start'])}, peak "
          f"{peak['file'] / MIB:.1f} + {peak['wal'] / MIB:.1f} (sum {peak['sum'] / MIB:.1f}), "
          f"all completed {mib(result['all_completed'])}, after cleanup {mib(result['after'])}")
    print(f"  cleanup {result['cleanup_s']} s: {result['cleanup_log']}")
    if "give_back_log" in result:
        print(f"  give-back: {result['give_back_log']}")
    for window in ("before_cleanup", "during_cleanup", "during_give_back"):
        lat = result.get(f"submit_{window}")
        if lat:
            print(f"  submit {window.replace('_', ' ')}: {lat['requests']} requests, "
                  f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms, "
                  f"non-201 {lat['non_201']}; slowest (ms, at s): {lat['slowest']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
