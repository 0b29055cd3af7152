#!/usr/bin/env python3
"""Issue 14's routing cost on the built-in hot path: jobd-bench's drain of
no-op jobs, A/B between two release binaries, alternating, per store.

    python3 bench/probes/routing_ab.py BEFORE_BINARY AFTER_BINARY
                                       [--rounds 2] [--backlog 50000]
                                       [--stores sqlite,redis]

Each round runs jobd-bench (`bench/main.rs`, built once with `cargo bench
--no-run` and run directly: under `cargo bench` it would be handed a
`--bench` flag it refuses) with `--only drain` once with BEFORE, then once
with AFTER (the harness starts its own redis-server,
`jobd serve` and `jobd worker` from the binary given, on 127.0.0.1). Prints
every run's drain and steady throughput (jobs/s) and, on Redis, commands
and Redis CPU per job, then the medians per binary.

Standard library only; every loop is bounded (rounds x binaries x stores,
each run bounded by the harness's own 600 s drain deadline).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

FIGURES = [
    ("drain_jobs_per_s", "drain jobs/s"),
    ("steady_jobs_per_s", "steady jobs/s"),
    ("redis_commands_per_job", "Redis cmds/job"),
    ("redis_cpu_us_per_job", "Redis µs/job"),
]


def harness(repo):
    """Builds jobd-bench; returns its executable."""
    built = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "jobd-bench", "--no-run",
         "--message-format", "json"],
        cwd=repo, check=True, capture_output=True, text=True, timeout=1800)
    for line in built.stdout.splitlines():
        message = json.loads(line)
        if message.get("target", {}).get("name") == "jobd-bench" and message.get("executable"):
            return message["executable"]
    raise RuntimeError("cargo built no jobd-bench executable")


def run(bench, binary, store, backlog):
    """One drain of `backlog` jobs on `store` by `binary`: its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        subprocess.run(
            [bench, "--jobd", binary, "--only", "drain", "--backlog", str(backlog),
             "--stores", store, "--json", out],
            check=True, stdout=subprocess.DEVNULL, timeout=900)
        with open(out) as f:
            return json.load(f)[0]["drain"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--stores", default="sqlite,redis")
    args = parser.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binaries = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    bench = harness(repo)
    results = {}
    for store in args.stores.split(","):
        for round_ in range(1, args.rounds + 1):
            for name, binary in binaries.items():
                figures = run(bench, binary, store, args.backlog)
                results.setdefault((store, name), []).append(figures)
                shown = ", ".join(f"{label} {figures[key]}" for key, label in FIGURES if key in figures)
                print(f"{store:6} round {round_} {name:6}: {shown}", flush=True)
    print()
    for (store, name), runs in sorted(results.items()):
        medians = []
        for key, label in FIGURES:
            values = [r[key] for r in runs if key in r]
            if values:
                medians.append(f"{label} {statistics.median(values):g}")
        print(f"{store:6} {name:6} median of {len(runs)}: " + ", ".join(medians))


if __name__ == "__main__":
    sys.exit(main())
