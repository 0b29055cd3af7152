"""Per-job logs under load: a command that prints N lines to stdout and N
to stderr (each line 40-odd bytes), against the same command with its
output sent to /dev/null, on one `jobd serve` (SQLite unless --store
names a Redis URL). Reports each job's run time, the lines and bytes its
log kept (the 4 MiB cap), the store writes the lines took (lines of one
write share their time stamp) and how late a follower of the log stream
saw a line after it was stored.

    python3 bench/probes/job_logs.py target/debug/jobd [--lines N] [--store URL]
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime

from probe_support import free_port, get_json, up, wait_for

SCRIPT = """#!/bin/sh
cat > /dev/null
i=0
if [ "$QUIET" = 1 ]; then exec 1>/dev/null 2>/dev/null; fi
awk -v n="$LINES" 'BEGIN { for (i = 1; i <= n; i++) { print "stdout line " i " of the noisy command"; print "stderr line " i " of the noisy command" > "/dev/stderr" } }'
"""


def post(port, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, json.dumps(body))
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


def run_job(port, job_type):
    job = post(port, "/api/v1/jobs", {"job_type": job_type})
    done = wait_for(
        "the job to end",
        lambda: (lambda j: j if j["status"] in ("completed", "failed") else None)(
            get_json(port, f"/api/v1/jobs/status/{job['job_id']}")
        ),
        600,
        every=0.02,
    )
    return done


def whole_log(port, job_id):
    lines, after = [], 0
    while True:
        page = get_json(port, f"/api/v1/jobs/status/{job_id}/logs?after={after}&limit=1000")
        lines += page["lines"]
        if not page["lines"]:
            return lines
        after = page["next"]


def follow_delays(port, seconds):
    """Submits a sleep job logging a line per 0.1 s, follows its log, and
    returns how long after each line's time stamp it arrived (ms)."""
    job = post(port, "/api/v1/jobs", {"job_type": "sleep", "parameters": {"seconds": seconds, "steps": int(seconds * 10), "log": True}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"/api/v1/jobs/status/{job['job_id']}/logs/stream")
    response = conn.getresponse()
    delays, event = [], None
    while True:
        raw = response.fp.readline()
        if not raw:
            break
        line = raw.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "log":
            at = json.loads(line[5:])["at"]
            stamp = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
            delays.append((time.time() - stamp) * 1000)
        elif line.startswith("data:") and event == "end":
            break
    conn.close()
    return delays


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--store", default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "noisy.sh")
        with open(script, "w") as f:
            f.write(SCRIPT)
        config = os.path.join(tmp, "jobd.toml")
        with open(config, "w") as f:
            f.write(f'[job_types.noisy]\ncommand = ["sh", "{script}"]\n')
            f.write(f'[job_types.quiet]\ncommand = ["sh", "-c", "QUIET=1 exec sh {script}"]\n')
        port = free_port()
        env = dict(os.environ, LINES=str(args.lines), RUST_LOG="warn")
        server = subprocess.Popen(
            [args.binary, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", os.path.join(tmp, "data"),
             "--store", args.store, "--redis-prefix", f"p{port}", "--config", config, "--sqlite-synchronous", "normal"],
            env=env, stdout=subprocess.DEVNULL)
        try:
            wait_for("jobd", lambda: up(port), 30)
            for job_type in ("quiet", "noisy", "quiet", "noisy"):
                start = time.monotonic()
                job = run_job(port, job_type)
                took = time.monotonic() - start
                if job_type == "quiet":
                    print(f"quiet: {took:.2f} s ({job['status']})")
                    continue
                log = whole_log(port, job["job_id"])
                kept = sum(len(l["line"].encode()) for l in log)
                writes = len({l["at"] for l in log})
                print(f"noisy: {took:.2f} s ({job['status']}), {2 * args.lines} lines printed, "
                      f"log keeps {len(log)} lines / {kept} bytes, seq {log[0]['seq']}..{log[-1]['seq']}, "
                      f"kept lines in {writes} distinct write time stamps")
            delays = sorted(follow_delays(port, 3))
            if delays:
                print(f"follow: {len(delays)} lines, delay after the line's store time p50 "
                      f"{delays[len(delays) // 2]:.0f} ms, max {delays[-1]:.0f} ms")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
