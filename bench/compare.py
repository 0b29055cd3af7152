#!/usr/bin/env python3
"""Runs jobd's benchmark and the RQ and BullMQ equivalents against one
throw-away Redis in the same run, and prints each figure as a ratio
jobd / peer.

    python3 bench/compare.py            # after: cargo build --release

RQ and BullMQ are installed from PyPI and npm into a temporary folder (never
committed). Results: bench/results/latest.json, latest.md and latest.svg.
Method (as in the peers' anchors): no-op jobs; the backlog is enqueued first,
then the workers start; steady drain = (N-1) / (last completion - first
completion); Redis CPU per job from INFO cpu over enqueue and drain.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
N_RQ = int(os.environ.get("COMPARE_RQ_JOBS", "5000"))
N_BULL = int(os.environ.get("COMPARE_BULL_JOBS", "20000"))
N_JOBD = int(os.environ.get("COMPARE_JOBD_JOBS", "100000"))
N_LAT = 2000
# apalis 1.0's steady drain in ../shared/bench-anchors (median of 3), quoted
# for the ratio; it is not run here.
APALIS_ANCHOR = 12_000

BULL_PRODUCE = """
import { Queue } from 'bullmq';
const [port, n] = process.argv.slice(2).map(Number);
const q = new Queue('bench', { connection: { host: '127.0.0.1', port } });
const lat = [], st = [];
for (let i = 0; i < n; i++) {
  const t = process.hrtime.bigint();
  const job = await q.add('noop', { i });
  lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  if (i < %d) { const t2 = process.hrtime.bigint(); await q.getJobState(job.id); st.push(Number(process.hrtime.bigint() - t2) / 1e6); }
}
await q.close();
console.log(JSON.stringify({ enqueue: lat, status: st }));
""" % N_LAT

BULL_WORKER = """
import { Worker } from 'bullmq';
const [port, n, conc] = process.argv.slice(2).map(Number);
let done = 0;
const w = new Worker('bench', async () => null, { connection: { host: '127.0.0.1', port }, concurrency: conc });
w.on('completed', async () => { if (++done >= n) { await w.close(); process.exit(0); } });
"""

RQ_JOBS = "def noop():\n    return None\n"

RQ_PRODUCE = """
import json, sys, time
from redis import Redis
from rq import Queue
sys.path.insert(0, sys.argv[3])
from rq_jobs import noop
r = Redis(port=int(sys.argv[1])); q = Queue('bench', connection=r)
lat, st = [], []
for i in range(int(sys.argv[2])):
    t = time.perf_counter(); job = q.enqueue(noop); lat.append((time.perf_counter() - t) * 1000)
    if i < %d:
        t = time.perf_counter(); job.get_status(refresh=True); st.append((time.perf_counter() - t) * 1000)
print(json.dumps({"enqueue": lat, "status": st}))
""" % N_LAT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, round((len(values) - 1) * p))], 3) if values else 0.0


class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        for _ in range(500):
            if self.cmd("PING") == "PONG":
                return
            time.sleep(0.01)
        raise SystemExit("redis-server did not start")

    def cmd(self, *args):
        try:
            out = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args), capture_output=True, text=True,
                                 timeout=10)
            return out.stdout.strip()
        except Exception:
            return ""

    def cpu(self):
        info = dict(l.split(":", 1) for l in self.cmd("INFO", "cpu").splitlines() if ":" in l)
        return float(info.get("used_cpu_sys", 0)) + float(info.get("used_cpu_user", 0))

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def drain(redis, n, count_key, workers):
    """Starts `workers` (argv lists) and times the drain of n jobs."""
    procs = [subprocess.Popen(w, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for w in workers]
    spawned = time.monotonic()
    first = None
    while True:
        done = int(redis.cmd("ZCARD", count_key) or 0)
        if first is None and done > 0:
            first = time.monotonic()
        if done >= n:
            break
        if time.monotonic() - spawned > 600:
            raise SystemExit(f"drain of {count_key} timed out at {done}/{n}")
        time.sleep(0.01)
    end = time.monotonic()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    return {"drain_jobs_per_s": round(n / (end - spawned)), "steady_jobs_per_s": round((n - 1) / max(end - first, 1e-9))}


def run_peer(name, redis, n, produce, workers, count_key):
    redis.cmd("FLUSHALL")
    cpu0 = redis.cpu()
    t = time.monotonic()
    out = json.loads(subprocess.run(produce, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    enqueue_s = time.monotonic() - t
    result = drain(redis, n, count_key, workers)
    result.update({
        "system": name,
        "jobs": n,
        "submit_latency": {"p50_ms": pct(out["enqueue"], 0.5), "p99_ms": pct(out["enqueue"], 0.99)},
        "status_latency": {"p50_ms": pct(out["status"], 0.5), "p99_ms": pct(out["status"], 0.99)},
        "end_to_end_jobs_per_s": round(n / (enqueue_s + n / result["drain_jobs_per_s"])),
        "redis_cpu_us_per_job": round((redis.cpu() - cpu0) * 1e6 / n),
    })
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


def svg(rows, path):
    """A bar chart of steady drain per system (no plotting library needed)."""
    width, bar, gap = 720, 26, 10
    top = max(r["steady_jobs_per_s"] for r in rows) or 1
    height = 40 + len(rows) * (bar + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="13"><text x="10" y="20" font-weight="bold">steady drain, no-op jobs/s (same machine, same run)'
             f'</text>']
    for i, r in enumerate(rows):
        y = 32 + i * (bar + gap)
        w = int((width - 330) * r["steady_jobs_per_s"] / top)
        parts.append(f'<text x="10" y="{y + 18}">{r["system"]}</text>')
        parts.append(f'<rect x="230" y="{y}" width="{w}" height="{bar}" fill="#3a6ea5"/>')
        parts.append(f'<text x="{236 + w}" y="{y + 18}">{r["steady_jobs_per_s"]:,} '
                     f'(status p99 {r["status_latency"]["p99_ms"]} ms)</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    jobd_bench = os.path.join(target, "release", "jobd-bench")
    if not os.path.exists(jobd_bench):
        raise SystemExit("build first: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="jobd-compare-")
    redis = Redis(tmp)
    try:
        print("installing rq and bullmq into", tmp, flush=True)
        subprocess.run([sys.executable, "-m", "venv", os.path.join(tmp, "venv")], check=True)
        py = os.path.join(tmp, "venv", "bin", "python")
        subprocess.run([py, "-m", "pip", "install", "-q", "rq", "redis"], check=True)
        node_dir = os.path.join(tmp, "node")
        os.makedirs(node_dir)
        with open(os.path.join(node_dir, "package.json"), "w") as f:
            f.write('{"type": "module", "private": true}')
        subprocess.run(["npm", "install", "-q", "--prefix", node_dir, "bullmq", "ioredis"], check=True,
                       stdout=subprocess.DEVNULL)
        for name, text in [("produce.mjs", BULL_PRODUCE), ("worker.mjs", BULL_WORKER)]:
            with open(os.path.join(node_dir, name), "w") as f:
                f.write(text)
        with open(os.path.join(tmp, "rq_jobs.py"), "w") as f:
            f.write(RQ_JOBS)
        with open(os.path.join(tmp, "rq_produce.py"), "w") as f:
            f.write(RQ_PRODUCE)

        redis.cmd("FLUSHALL")
        cpu0 = redis.cpu()
        out = subprocess.run([jobd_bench, "--stores", "redis,sqlite", "--backlog", str(N_JOBD), "--redis-url",
                              f"redis://127.0.0.1:{redis.port}/0", "--json", os.path.join(tmp, "jobd.json")],
                             check=True)
        with open(os.path.join(tmp, "jobd.json")) as f:
            jobd = json.load(f)

        rq_bin = os.path.join(tmp, "venv", "bin", "rq")
        env_path = f"PYTHONPATH={tmp}"
        rq = run_peer("RQ SimpleWorker x2", redis, N_RQ, [py, os.path.join(tmp, "rq_produce.py"), str(redis.port),
                                                          str(N_RQ), tmp],
                      [["env", env_path, rq_bin, "worker", "--burst", "--quiet", "-w", "rq.worker.SimpleWorker", "-u",
                        f"redis://127.0.0.1:{redis.port}/0", "-n", f"w{i}", "bench"] for i in range(2)],
                      "rq:finished:bench")
        bull = run_peer("BullMQ concurrency 50", redis, N_BULL,
                        ["node", os.path.join(node_dir, "produce.mjs"), str(redis.port), str(N_BULL)],
                        [["node", os.path.join(node_dir, "worker.mjs"), str(redis.port), str(N_BULL), "50"]],
                        "bull:bench:completed")
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for r in jobd:
        d = r["drain"]
        rows.append({"system": f"jobd ({r['store']})", "jobs": d["jobs"], "steady_jobs_per_s": int(d["steady_jobs_per_s"]),
                     "drain_jobs_per_s": int(d["drain_jobs_per_s"]), "end_to_end_jobs_per_s": int(d["end_to_end_jobs_per_s"]),
                     "submit_latency": r["submit_latency"], "status_latency": r["status_latency"],
                     "redis_cpu_us_per_job": d.get("redis_cpu_us_per_job") and int(d["redis_cpu_us_per_job"]), "raw": r})
    rows += [rq, bull]
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump(rows, f, indent=2)
    svg(rows, os.path.join(RESULTS, "latest.svg"))
    report = "\n".join(peer_table(rows) + jobd_table(jobd) + targets(jobd, rq, bull))
    with open(os.path.join(RESULTS, "latest.md"), "w") as f:
        f.write(report + "\n")
    print(report)


def peer_table(rows):
    """jobd beside the peers: throughput, idle latency, Redis CPU."""
    lines = ["| system | jobs | steady jobs/s | drain jobs/s | e2e jobs/s | submit p50/p99 ms | status p50/p99 ms | "
             "Redis CPU µs/job |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['system']} | {r['jobs']} | {r['steady_jobs_per_s']:,} | {r['drain_jobs_per_s']:,} | "
                     f"{r['end_to_end_jobs_per_s']:,} | {r['submit_latency']['p50_ms']} / {r['submit_latency']['p99_ms']} | "
                     f"{r['status_latency']['p50_ms']} / {r['status_latency']['p99_ms']} | "
                     f"{r.get('redis_cpu_us_per_job') or '-'} |")
    return lines


def jobd_table(jobd):
    """jobd's own figures: under load, with a per-user limit, memory, streams."""
    by = {r["store"]: r for r in jobd}
    stores = [s for s in ("redis", "sqlite") if s in by]

    def row(label, get):
        return f"| {label} | " + " | ".join(str(get(by[s])) for s in stores) + " |"

    def p(summary):
        return f"{summary['p50_ms']} / {summary['p99_ms']}"

    return ["", "| figure | " + " | ".join(f"jobd ({s})" for s in stores) + " |",
            "|---|" + "---:|" * len(stores),
            row("steady drain, per-user limit 2 across 100 users (jobs/s)",
                lambda r: f"{int(r['drain_per_user_limit']['steady_jobs_per_s']):,}"),
            row("status p50 / p99 ms while a backlog drains (16 clients)",
                lambda r: p(r["drain_under_load"]["status_under_load"])),
            row("submit p50 / p99 ms while a backlog drains (16 clients)",
                lambda r: p(r["drain_under_load"]["submit_under_load"])),
            row("steady drain meanwhile (jobs/s)",
                lambda r: f"{int(r['drain_under_load']['steady_jobs_per_s']):,}"),
            row("Redis commands per job", lambda r: r["drain"].get("redis_commands_per_job", "-")),
            row("worker peak RSS MiB (SQLite: the node running API and workers)",
                lambda r: r["drain"]["worker_peak_rss_mib"]),
            row("idle worker RSS MiB", lambda r: round(r["idle_worker_rss_mib"], 1)),
            row("API node RSS MiB with 1,000 SSE streams", lambda r: round(r["sse"]["server_rss_with_streams_mib"], 1)),
            row("completion → stream event p50 / p99 ms", lambda r: p(r["wakeup_latency"]))]


def targets(jobd, rq, bull):
    """Each of issue 4's floors, with this run's figure."""
    by = {r["store"]: r for r in jobd}
    lines = ["", "| target | figure | met |", "|---|---|---|"]

    def check(label, figure, met):
        lines.append(f"| {label} | {figure} | {'yes' if met else 'no'} |")

    if "redis" in by:
        r = by["redis"]
        steady = r["drain"]["steady_jobs_per_s"]
        check("steady drain ≥ 2× BullMQ (same run)", f"{steady / bull['steady_jobs_per_s']:.2f}×",
              steady >= 2 * bull["steady_jobs_per_s"])
        check(f"steady drain ≥ 2× apalis ({APALIS_ANCHOR:,}/s, from bench-anchors, not this run)",
              f"{steady / APALIS_ANCHOR:.2f}×", steady >= 2 * APALIS_ANCHOR)
        check("steady drain ≥ 50× RQ SimpleWorker (same run)", f"{steady / rq['steady_jobs_per_s']:.1f}×",
              steady >= 50 * rq["steady_jobs_per_s"])
        cpu = r["drain"]["redis_cpu_us_per_job"]
        check("Redis CPU per job ≤ 0.5× BullMQ", f"{cpu / max(bull['redis_cpu_us_per_job'], 1):.2f}×",
              cpu <= 0.5 * bull["redis_cpu_us_per_job"])
    if "sqlite" in by:
        steady = by["sqlite"]["drain"]["steady_jobs_per_s"]
        check("SQLite steady drain ≥ 10,000 jobs/s", f"{int(steady):,}", steady >= 10_000)
    for store, r in by.items():
        loaded = r["drain_under_load"]
        worst = max(loaded["status_under_load"]["p99_ms"], loaded["submit_under_load"]["p99_ms"])
        check(f"{store}: submit and status p99 < 5 ms while draining", f"{worst} ms", worst < 5)
        check(f"{store}: idle worker RSS < 20 MiB", f"{r['idle_worker_rss_mib']:.1f} MiB", r["idle_worker_rss_mib"] < 20)
        sse = r["sse"]["server_rss_with_streams_mib"]
        check(f"{store}: 1,000 SSE streams < 100 MiB", f"{sse:.1f} MiB", sse < 100)
        wake = r["wakeup_latency"]["p99_ms"]
        check(f"{store}: wake-up p99 < 10 ms", f"{wake} ms", wake < 10)
    return lines


if __name__ == "__main__":
    main()
