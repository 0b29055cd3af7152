"""The one drain observer of bench/compare.py, and what it reads.

Every system's drain (jobd on Redis, jobd on SQLite, RQ, BullMQ, apalis,
Celery) is timed by `observe_drain` below, in compare.py's own process:
one persistent connection, opened before the workers start, runs one cheap
count query every `poll_s` (10 ms by default) until the count reaches the
backlog. Only the count query differs between systems (`RedisCount`,
`SqliteCount`). Every result it returns names the function, a hash of its
source and the process that ran it, so the dry run can check that every
system was timed by this same code.

Besides the clock it samples, at the workers' start, at the first
completion it sees and at the last: Redis's INFO (CPU, commands,
commandstats), the CPU time of the worker's process tree and of the other
processes it is told about (their CPU-time clocks, ns; by thread name from
/proc schedstat), its
own CPU time, and the machine's total busy time (/proc/stat), so that the
CPU of processes that are not part of the run shows up as "other load".
"""
import hashlib
import inspect
import os
import socket
import sqlite3
import time

CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


class RespError(Exception):
    pass


class Resp:
    """A minimal Redis client: one persistent TCP connection, RESP2."""

    def __init__(self, port, db=0, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        if db:
            self.call("SELECT", db)

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise RespError(f"unexpected reply {line!r}")

    def info(self):
        """INFO cpu, stats and commandstats: CPU seconds, commands, and per
        command {calls, usec}."""
        text = self.call("INFO", "cpu", "stats", "commandstats").decode()
        fields, commands = {}, {}
        for line in text.splitlines():
            if ":" not in line:
                continue
            key, value = line.split(":", 1)
            if key.startswith("cmdstat_"):
                parts = dict(p.split("=", 1) for p in value.split(","))
                commands[key[len("cmdstat_"):]] = {"calls": int(parts["calls"]), "usec": int(parts["usec"])}
            else:
                fields[key] = value
        return {"cpu_s": float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"]),
                "commands": int(fields["total_commands_processed"]), "commandstats": commands}

    def close(self):
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


class RedisCount:
    """A completion count read with one Redis command over a persistent
    connection (e.g. `ZCARD bull:bench:completed`)."""

    kind = "redis"

    def __init__(self, port, *command, db=0):
        self.conn = Resp(port, db=db)
        self.command = command
        self.describe = " ".join(str(c) for c in command) + (f" (db {db})" if db else "")
        # The observer's polls show up in Redis's counters; this is the
        # command they are counted under, subtracted from the figures.
        self.redis_command = str(command[0]).lower()

    def __call__(self):
        return int(self.conn.call(*self.command) or 0)

    def close(self):
        self.conn.close()


class SqliteCount:
    """A completion count read with one query over a persistent read-only
    SQLite connection (autocommit: no read transaction is held between
    polls, so the writer's checkpoints are not held back)."""

    kind = "sqlite"

    def __init__(self, path, sql):
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                    check_same_thread=False)
        self.sql = sql
        self.describe = sql
        self.redis_command = None

    def __call__(self):
        row = self.conn.execute(self.sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def close(self):
        self.conn.close()


def tree_pids(pid):
    """pid and its descendants, alive now."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    stack += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def process_cpu_s(pid):
    """CPU seconds of one process, all its threads, exited ones included:
    its CPU-time clock (clock_gettime on the clock id of pid, ns), plus the
    user+system time of children it has reaped (/proc, clock ticks)."""
    try:
        total = time.clock_gettime_ns(((~pid) << 3) | 2) / 1e9  # CPUCLOCK_SCHED of the process
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return total + (int(fields[13]) + int(fields[14])) * CLOCK_TICK_S  # cutime, cstime
    except OSError:
        return 0.0


def tree_cpu_s(pids):
    return sum(process_cpu_s(p) for root in pids for p in tree_pids(root))


def threads_cpu_s(pids):
    """CPU seconds of the live threads of the trees, by thread name (comm)."""
    out = {}
    for root in pids:
        for pid in tree_pids(root):
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/comm") as f:
                        name = f.read().strip()
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        out[name] = out.get(name, 0.0) + int(f.read().split()[0]) / 1e9
                except OSError:
                    pass
    return out


def machine_busy_s():
    """Busy CPU seconds of the whole machine, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + (fields[7] if len(fields) > 7 else 0)
    return busy * CLOCK_TICK_S


class DrainFailed(Exception):
    pass


def exited(pid):
    """Whether pid has exited, without reaping it (Popen.poll() would, and
    its CPU time would be gone with it): a zombie or gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _sample(workers, others, redis):
    return {
        "t": time.monotonic(),
        "machine_s": machine_busy_s(),
        "worker_s": tree_cpu_s([p.pid for p in workers]),
        "worker_threads_s": threads_cpu_s([p.pid for p in workers]),
        "others_s": {name: tree_cpu_s(pids) for name, pids in others.items()},
        "observer_s": time.process_time(),
        "redis": redis.info() if redis else None,
    }


def observe_drain(jobs, count, start_workers, others=None, redis=None, redis_pid=None, poll_s=0.01,
                  deadline_s=300):
    """Times one drain. `start_workers()` starts the workers (a list of
    Popen) once the backlog of `jobs` is in place; `count()` reads how many
    have completed. Polls `count` every `poll_s` seconds on a fixed cadence
    until it reaches `jobs`; fails past `deadline_s`, or when every worker
    has exited short of the backlog. `others` names further processes whose
    CPU is counted ({name: [pid]}); `redis` (a Resp to the Redis in use) is
    sampled for INFO, `redis_pid` for its CPU from /proc.

    startup = first completion seen - workers started; drain = last
    completion seen - workers started; steady = (jobs - 1) / (last - first),
    as in ../shared/bench-anchors. Per-job costs are over the steady
    window, [first completion seen, last completion seen], divided by the
    jobs completed in it."""
    others = dict(others or {})
    if redis_pid:
        others["redis-server"] = [redis_pid]
    before = _sample([], others, redis)
    t_spawn = time.monotonic()
    workers = start_workers()
    polls, first, first_count = 0, None, 0
    tick = t_spawn
    exited_at_poll = None
    while True:
        tick += poll_s
        wait = tick - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the fixed polling interval
        done = count()
        polls += 1
        now = time.monotonic()
        if done > 0 and first is None:
            first_count = done
            first = _sample(workers, others, redis)
            first["polls"] = polls
        if done >= jobs:
            last = _sample(workers, others, redis)
            last["polls"] = polls
            break
        if now - t_spawn > deadline_s:
            raise DrainFailed(f"{done} of {jobs} done after {deadline_s} s")
        if all(exited(w.pid) for w in workers):
            # Workers gone: one more poll for their last writes, then fail.
            if exited_at_poll is None:
                exited_at_poll = polls
            elif polls - exited_at_poll > max(2, int(0.5 / poll_s)):
                raise DrainFailed(f"workers exited with {done} of {jobs} done "
                                  f"(exit codes {[w.poll() for w in workers]})")
    # Without a window (the first poll saw the whole backlog done: tiny dry
    # runs), the per-job costs fall back to the whole drain.
    if first_count >= jobs:
        first = dict(before, polls=0, t=t_spawn)
        first_count = 0
    steady_window = max(last["t"] - first["t"], 1e-9)
    steady_jobs = max(jobs - first_count, 1)

    def per_job(a, b, key, n):
        return (b[key] - a[key]) * 1e6 / n

    result = {
        "observer": OBSERVER_ID,
        "observer_source_sha256": OBSERVER_SHA,
        "observer_pid": os.getpid(),
        "poll_ms": poll_s * 1000,
        "polls": polls,
        "count_query": count.describe,
        "count_kind": count.kind,
        "jobs": jobs,
        "startup_s": first["t"] - t_spawn,
        "drain_s": last["t"] - t_spawn,
        "steady_s": steady_window,
        "first_count": first_count,
        "drain_jobs_per_s": jobs / (last["t"] - t_spawn),
        "steady_jobs_per_s": (jobs - 1) / steady_window,
        "cpu_us_per_job": {
            "worker": per_job(first, last, "worker_s", steady_jobs),
            "worker_incl_startup": (last["worker_s"] - before["worker_s"]) * 1e6 / jobs,
            "observer": per_job(first, last, "observer_s", steady_jobs),
            **{name: (last["others_s"][name] - first["others_s"][name]) * 1e6 / steady_jobs for name in others},
        },
        "worker_cores": (last["worker_s"] - first["worker_s"]) / steady_window,
        "observer_cores": (last["observer_s"] - first["observer_s"]) / steady_window,
        # The worker's CPU by thread name (threads alive at the end).
        "worker_threads_us_per_job": dict(sorted(
            ((name, (t - first["worker_threads_s"].get(name, 0.0)) * 1e6 / steady_jobs)
             for name, t in last["worker_threads_s"].items()), key=lambda kv: -kv[1])),
        # The machine's busy time in the steady window minus what the run's
        # own processes used: other processes' load, in cores.
        "other_load_cores": ((last["machine_s"] - first["machine_s"])
                             - (last["worker_s"] - first["worker_s"])
                             - (last["observer_s"] - first["observer_s"])
                             - sum(last["others_s"][n] - first["others_s"][n] for n in others)) / steady_window,
        "workers": workers,
    }
    if redis:
        own_polls = last["polls"] - first["polls"]
        cmd_a, cmd_b = first["redis"]["commandstats"], last["redis"]["commandstats"]
        per_command = {}
        for name, b in cmd_b.items():
            a = cmd_a.get(name, {"calls": 0, "usec": 0})
            calls, usec = b["calls"] - a["calls"], b["usec"] - a["usec"]
            if name == count.redis_command:
                calls -= own_polls
            if name == "info":
                continue
            if calls > 0:
                per_command[name] = {"calls_per_job": calls / steady_jobs, "usec_per_job": usec / steady_jobs}
        result["redis"] = {
            "cpu_us_per_job": (last["redis"]["cpu_s"] - first["redis"]["cpu_s"]) * 1e6 / steady_jobs,
            "cpu_us_per_job_incl_startup": (last["redis"]["cpu_s"] - before["redis"]["cpu_s"]) * 1e6 / jobs,
            # total_commands_processed counts the commands scripts call as
            # well as the clients' own; the observer's polls and its INFO
            # are taken out.
            "commands_per_job": (last["redis"]["commands"] - first["redis"]["commands"] - own_polls - 1)
            / steady_jobs,
            "script_calls_per_job": sum(v["calls_per_job"] for k, v in per_command.items()
                                        if k in ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall")),
            "cores": (last["redis"]["cpu_s"] - first["redis"]["cpu_s"]) / steady_window,
            "per_command": dict(sorted(per_command.items(), key=lambda kv: -kv[1]["usec_per_job"])),
        }
    return result


OBSERVER_ID = f"{observe_drain.__module__}.{observe_drain.__qualname__}"
OBSERVER_SHA = hashlib.sha256(inspect.getsource(observe_drain).encode()).hexdigest()
