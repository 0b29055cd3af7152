"""`jobd.Worker`: a long-lived process that runs Python handlers for jobs of
remote job types, over the HTTP worker protocol (docs/worker-protocol.md).

Shape (threads, all daemons):

- the *pollers* keep a long-poll `exchange` in flight: it claims into
  the free slots it reserves, renews the leases of the jobs held (it is the
  heartbeat) and hears which held jobs to stop. More than one at times
  (see `_poller`): a fresh one after a waiting call claimed, and one for
  slots freed while the others wait with fewer reserved;
- the *sender* sends finished attempts at once, every result that finished
  meanwhile in one `exchange` (wait 0) that also claims their replacements;
- handler threads (`concurrency` of them) run plain functions; one asyncio
  loop thread runs `async def` handlers, at most `concurrency` at once in
  all;
- the progress thread sends each job's latest progress report; the log
  thread sends log lines in batches.

Slots are reserved before a call claims, so the two calls never claim more
than `concurrency` together."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Set

import httpx

from ._http import make_client
from .context import JobContext, _current
from .errors import ApiError, ClaimLostError, JobCancelled, PermanentError, RetryLater, raise_for
from .logs import JobLogHandler, LogShipper, StdoutTee

__all__ = ["Worker"]

log = logging.getLogger("jobd.worker")

Handler = Callable[[JobContext], Any]

#: Backoff after a failed call: first, factor, most (seconds).
_BACKOFF = (0.05, 2.0, 5.0)
#: Statuses worth retrying the same call for (the server or a proxy in
#: between is unavailable for now).
_TRANSIENT = {502, 503, 504}


class _Stop(Exception):
    """The worker is shutting down: give up retrying."""


class Worker:
    """Runs handlers for jobs of remote job types served by the jobd API at
    `url`.

        worker = jobd.Worker("http://127.0.0.1:8000", concurrency=4)

        @worker.handler("extraction")
        def extract(job):
            job.progress(0.5)
            return {"chunks": 3}

        worker.run()            # until SIGINT/SIGTERM
        worker.run(burst=True)  # until no job of its types is left

    `grace_seconds` is how long running handlers may take to finish once
    shutdown begins; the jobs still running then go back to the queue
    without spending an attempt. `worker_id` defaults to `host:pid:n`.
    `capture_logging` copies `logging` records emitted inside a handler to
    the job's log, `capture_print` what it prints (`sys.stdout`)."""

    _count = 0

    def __init__(
        self,
        url: str,
        concurrency: int = 1,
        token: Optional[str] = None,
        *,
        grace_seconds: float = 30.0,
        worker_id: Optional[str] = None,
        capture_logging: bool = True,
        capture_print: bool = True,
    ) -> None:
        if not 1 <= concurrency <= 1024:
            raise ValueError("concurrency must be 1 to 1024")
        self.url = url.rstrip("/")
        self.concurrency = concurrency
        self.grace_seconds = grace_seconds
        self.capture_logging = capture_logging
        self.capture_print = capture_print
        self._token = token
        Worker._count += 1
        host = socket.gethostname()
        safe_host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in host)[:80] or "host"
        self.worker_id = worker_id or f"{safe_host}:{os.getpid()}:{Worker._count}"
        self.host = host
        self._handlers: Dict[str, Handler] = {}
        self._stop_requested = threading.Event()
        self._last_run: Optional[_Run] = None
        self.processed = 0

    # ------------------------------------------------------------ handlers

    def handler(self, job_type: str) -> Callable[[Handler], Handler]:
        """Decorator: registers `fn(job)` (plain or `async def`) for
        `job_type`, a type configured `remote = true` on the server. Its
        return value (JSON) is the result; an exception fails the attempt
        (its traceback is the error; retried as the job type says),
        `jobd.PermanentError` without retry, `jobd.RetryLater(s)` retried
        after `s` seconds."""

        def register(fn: Handler) -> Handler:
            self._handlers[job_type] = fn
            return fn

        return register

    def stop(self) -> None:
        """Asks a running `run()` to shut down gracefully (thread-safe; what
        SIGINT and SIGTERM do)."""
        self._stop_requested.set()

    def run(self, burst: bool = False) -> int:
        """Registers, runs jobs until SIGINT/SIGTERM (or `stop()`), then
        shuts down gracefully: claims no more, lets running handlers finish
        within `grace_seconds`, gives the others back, unregisters. With
        `burst=True` it returns once no job of its types is left. Returns
        the number of attempts this run ended (results sent)."""
        if not self._handlers:
            raise ValueError("no handlers: register one with @worker.handler(job_type)")
        self._last_run = _Run(self, burst)
        try:
            self.processed = self._last_run.run()
        finally:
            self._stop_requested.clear()
        return self.processed

    @property
    def handlers_running(self) -> int:
        """Handlers of the last run still running after it returned: jobs
        given back at a second signal (or after the grace period) whose
        functions have not returned; threads cannot be stopped from
        outside."""
        return self._last_run.handlers_running if self._last_run else 0


class _Run:
    """One `Worker.run()`: its threads and state, left behind by the next
    run (threads of a finished run may still be ending)."""

    def __init__(self, worker: Worker, burst: bool) -> None:
        self.url = worker.url
        self._token = worker._token
        self.concurrency = worker.concurrency
        self.grace_seconds = worker.grace_seconds
        self.capture_logging = worker.capture_logging
        self.capture_print = worker.capture_print
        self.worker_id = worker.worker_id
        self.host = worker.host
        self._handlers = dict(worker._handlers)
        self._stop_requested = worker._stop_requested
        self._burst = burst
        self._lock = threading.Condition()
        self._free = self.concurrency  # slots neither running nor reserved by a call
        self._running: Dict[str, JobContext] = {}  # claims whose handler runs
        self._outbox: List[bytes] = []  # finished items not yet sent
        self._outbox_ids: List[str] = []
        self._sending = 0  # finished items in a call not yet answered
        self._release: List[Dict[str, str]] = []  # claimed while stopping: given back
        self._stopping = False
        self._done = threading.Event()  # burst: nothing left
        self._closing = threading.Event()  # run() is over: threads end, calls give up
        self._abort = False  # a second signal: no grace
        self._unregistered = False
        self._late_releases = 0  # give-backs of jobs claimed after the unregister, in flight
        self._in_flight: Set[httpx.Client] = set()  # clients of waiting calls in flight
        self._waiting = 0  # waiting calls in flight
        self._pollers = 0  # poller threads alive
        self._idle_pollers = 0  # of them, those not in a call
        self._poller_clients: List[httpx.Client] = []  # kept-alive clients of pollers that ended
        self._sender_slots = 0  # slots of results not yet sent: their call claims into them first
        self._progress_dirty: Dict[str, JobContext] = {}
        self._progress_wake = threading.Event()
        self._tasks: "queue.SimpleQueue[Optional[JobContext]]" = queue.SimpleQueue()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._worker_json = b"{}"
        self._settings: Dict[str, Any] = {}
        self._local = threading.local()
        self._logs = LogShipper(self._new_client)
        self.processed = 0

    def run(self) -> int:
        """`Worker.run`'s body; returns the attempts ended."""
        restore = self._install_signals()
        capture = JobLogHandler(self._logs) if self.capture_logging else None
        if capture:
            logging.getLogger().addHandler(capture)
        tee = StdoutTee(self._logs, sys.stdout) if self.capture_print else None
        if tee:
            sys.stdout = tee  # type: ignore[assignment]
        threads: List[threading.Thread] = []
        try:
            self._register(self._client())
            if any(inspect.iscoroutinefunction(fn) for fn in self._handlers.values()):
                self._loop = asyncio.new_event_loop()
                threads.append(threading.Thread(target=self._loop.run_forever, name="jobd-async", daemon=True))
            sync_needed = any(not inspect.iscoroutinefunction(fn) for fn in self._handlers.values())
            for i in range(self.concurrency if sync_needed else 0):
                threads.append(threading.Thread(target=self._handler_thread, name=f"jobd-handler-{i}", daemon=True))
            threads.append(threading.Thread(target=self._sender, name="jobd-sender", daemon=True))
            threads.append(threading.Thread(target=self._progress_sender, name="jobd-progress", daemon=True))
            for t in threads:
                t.start()
            with self._lock:
                self._start_poller()
            log.info("worker %s serving %s with %d slots", self.worker_id, ", ".join(self._handlers),
                     self.concurrency)
            # Signals are handled in this thread between waits; a burst's end
            # is seen within 0.1 s.
            while not (self._stop_requested.is_set() or self._done.wait(0.1)):
                pass
            self._shutdown()
        finally:
            self._closing.set()
            self._logs.stop()
            self._progress_wake.set()
            for _ in range(self.concurrency):
                self._tasks.put(None)
            with self._lock:
                self._lock.notify_all()
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            if capture:
                logging.getLogger().removeHandler(capture)
            if tee and sys.stdout is tee:
                sys.stdout = tee.real
            restore()
        return self.processed

    @property
    def handlers_running(self) -> int:
        """Handlers whose function has not returned."""
        with self._lock:
            return len(self._running)

    def _install_signals(self) -> Callable[[], None]:
        """SIGINT/SIGTERM: graceful shutdown; a second one: no grace."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum: int, _frame: Any) -> None:
            if self._stop_requested.is_set():
                log.warning("second signal: giving running jobs back now")
                self._abort = True
                with self._lock:
                    self._lock.notify_all()
            else:
                log.info("signal %d: shutting down (grace %.0f s)", signum, self.grace_seconds)
            self._stop_requested.set()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore

    def _shutdown(self) -> None:
        """Stops claiming, waits for running handlers up to the grace
        period, sends their results, gives back the rest, unregisters."""
        with self._lock:
            self._stopping = True
            deadline = time.monotonic() + self.grace_seconds
            while self._running and not self._abort:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            rest = list(self._running.values())
            for job in rest:
                job._stop("shutdown")
            release = [{"job_id": j.id, "token": j.token} for j in rest]
            # Results of handlers that ended in time go out before unregister.
            deadline = time.monotonic() + 10.0
            while (self._outbox or self._sending) and time.monotonic() < deadline:
                self._lock.wait(0.1)
            release += self._release
            self._release = []
            # From here a call that claims gives its jobs back itself; the
            # waiting calls in flight are abandoned (the server gives back
            # what a call claims if its client goes away before the answer).
            self._unregistered = True
            for client in self._in_flight:
                _abort(client)
        if release:
            log.info("giving back %d running jobs", len(release))
        self._unregister(release)
        with self._lock:  # late give-backs finish before the process may exit
            deadline = time.monotonic() + 5.0
            while (self._late_releases or self._waiting) and time.monotonic() < deadline:
                self._lock.wait(0.1)

    def _unregister(self, release: List[Dict[str, str]]) -> None:
        """Unregisters, giving `release` back to the queue (best effort:
        leases recover what is not given back)."""
        try:
            self._call(self._client(), "/api/v1/workers/unregister",
                       {"worker": self._settings.get("worker", {}), "release": release}, retries=3)
        except Exception as e:  # noqa: BLE001
            log.warning("unregister failed (%s): leases will recover the jobs held", e)

    # ------------------------------------------------------------ HTTP

    def _new_client(self) -> httpx.Client:
        return make_client(self.url, self._token)

    def _client(self) -> httpx.Client:
        """This thread's keep-alive client."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
        return client

    def _call(self, client: httpx.Client, path: str, body: Any, retries: Optional[int] = None,
              timeout: float = 30.0) -> Any:
        """POSTs `body` (a dict, or JSON bytes); retries connection errors
        and 502/503/504 with backoff (`retries` times; None: until the
        worker closes). Raises `ApiError` for other error answers."""
        delay, factor, most = _BACKOFF
        attempt = 0
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        while True:
            try:
                response = client.post(path, content=content, headers={"Content-Type": "application/json"},
                                       timeout=httpx.Timeout(30.0, read=timeout))
                if response.status_code not in _TRANSIENT:
                    raise_for(response)
                    return response.json() if response.content else None
                problem: Any = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as e:
                problem = e
            attempt += 1
            abandoned = self._unregistered and path.endswith("/exchange")  # see _shutdown
            if self._closing.is_set() or abandoned or (retries is not None and attempt > retries):
                raise _Stop(f"{path}: {problem}")
            log.warning("%s failed (%s); retrying in %.2f s", path, problem, delay)
            if self._closing.wait(delay):
                raise _Stop(path)
            delay = min(delay * factor, most)

    def _register(self, client: httpx.Client) -> None:
        body = {"worker_id": self.worker_id, "host": self.host, "pid": os.getpid(),
                "job_types": sorted(self._handlers), "concurrency": self.concurrency}
        answer = self._call(client, "/api/v1/workers/register", body, retries=None if self._settings else 20)
        self._settings = answer
        self._worker_json = json.dumps(answer["worker"]).encode()
        heartbeat = float(answer.get("heartbeat_seconds", 5.0))
        self._wait = max(0.0, min(float(answer.get("max_wait_seconds", 5.0)), heartbeat * 0.8))

    def _exchange(self, client: httpx.Client, held: List[Dict[str, str]], finished: List[bytes], max_jobs: int,
                  wait: float) -> Dict[str, Any]:
        """One `exchange` call. (A server whose store lost this worker's
        registration, such as a Redis that lost its data, registers it
        again from the call itself: nothing to do here.)"""
        body = b'{"worker":%s,"held":%s,"finished":[%s],"max_jobs":%d,"wait_seconds":%s}' % (
            self._worker_json, json.dumps(held).encode(), b",".join(finished), max_jobs,
            repr(float(wait)).encode())
        return self._call(client, "/api/v1/workers/exchange", body, timeout=wait + 30.0)

    def _held(self) -> List[Dict[str, str]]:
        """The claims whose handler runs and that were not stopped (caller
        holds the lock)."""
        return [{"job_id": j.id, "token": j.token} for j in self._running.values() if not j.cancelled]

    # ------------------------------------------------------------ poller

    def _start_poller(self) -> None:
        """Starts a poller thread (caller holds the lock)."""
        self._pollers += 1
        threading.Thread(target=self._poller, name=f"jobd-poller-{self._pollers}", daemon=True).start()

    def _poller_needed(self) -> None:
        """Free slots no waiting call covers get a poller of their own when
        none is idle (caller holds the lock)."""
        if self._free > 0 and self._idle_pollers == 0 and not self._stopping and not self._closing.is_set() \
                and self._pollers < self.concurrency + 2:
            self._start_poller()

    def _poller(self) -> None:
        """Keeps waiting `exchange` calls in flight: always one (the channel
        on which the server names the jobs to stop), a fresh one with the
        new `held` list right after a waiting call claimed (the worker's
        other waiting calls may have started listening too late to hear of
        those jobs), and one for slots freed while the others wait with
        fewer reserved (a waiting call cannot be widened). Idle pollers
        beyond one end."""
        with self._lock:  # pollers come and go: their clients stay (making one costs milliseconds)
            client = self._poller_clients.pop() if self._poller_clients else None
        client = client or self._new_client()
        try:
            self._poll(client)
        finally:
            with self._lock:
                self._poller_clients.append(client)

    def _poll(self, client: httpx.Client) -> None:
        fresh = False
        while True:
            with self._lock:
                self._idle_pollers += 1
                while True:
                    if self._closing.is_set() or (self._stopping and not self._running):
                        self._idle_pollers -= 1
                        self._pollers -= 1
                        return
                    if fresh or self._waiting == 0 or (self._free > 0 and not self._stopping):
                        break
                    if self._idle_pollers > 1:
                        self._idle_pollers -= 1
                        self._pollers -= 1
                        return
                    self._lock.wait()
                self._idle_pollers -= 1
                idle = not self._running and not self._outbox and not self._sending
                reserve = 0 if self._stopping else self._free
                self._free -= reserve
                self._waiting += 1
                self._in_flight.add(client)
                held = self._held()
            # Burst: a call with wait 0 when idle; else short waits, so that
            # the end is seen soon even if no other call wakes this one.
            wait = 0.0 if (self._burst and idle) else min(self._wait, 0.5) if self._burst else self._wait
            try:
                answer = self._exchange(client, held, [], reserve, wait)
            except _Stop:
                with self._lock:
                    self._pollers -= 1
                self._unreserve(reserve)
                return
            except Exception as e:  # noqa: BLE001 - a bad answer must not end the worker
                self._unreserve(reserve)
                log.error("exchange failed: %s", e)
                self._closing.wait(1.0)
                continue
            finally:
                with self._lock:
                    self._waiting -= 1
                    self._in_flight.discard(client)
                    self._lock.notify_all()
            claimed = self._take(answer, reserve)
            fresh = claimed > 0
            if self._burst and idle and wait == 0.0 and not claimed:
                with self._lock:
                    if not self._running and not self._outbox and not self._sending:
                        self._done.set()
                        self._pollers -= 1
                        return  # no more calls: run() shuts down

    def _unreserve(self, n: int) -> None:
        with self._lock:
            self._free += n
            self._poller_needed()
            self._lock.notify_all()

    def _take(self, answer: Dict[str, Any], reserved: int) -> int:
        """Applies an exchange answer: stops, then the jobs claimed into
        `reserved` slots (the unused ones are freed again)."""
        jobs = answer.get("jobs") or []
        start: List[JobContext] = []
        late: List[Dict[str, str]] = []
        with self._lock:
            for stop in answer.get("stop") or []:
                job = self._running.get(stop.get("job_id"))
                if job is not None:
                    job._stop(stop.get("reason") or "stopped")
            for entry in jobs:
                job = JobContext(self, entry)
                if self._stopping:  # claimed by a call sent before the shutdown
                    (late if self._unregistered else self._release).append({"job_id": job.id, "token": job.token})
                    continue
                self._running[job.id] = job
                start.append(job)
            self._free += reserved - len(start)
            self._poller_needed()
            self._lock.notify_all()
        if late:
            with self._lock:
                self._late_releases += 1
            try:
                self._unregister(late)
            finally:
                with self._lock:
                    self._late_releases -= 1
                    self._lock.notify_all()
        for job in start:
            if job.time_limit is not None:
                job._timer = threading.Timer(job.time_limit, self._time_out, args=(job,))
                job._timer.daemon = True
                job._timer.start()
            fn = self._handlers.get(job.type)
            if fn is not None and inspect.iscoroutinefunction(fn) and self._loop is not None:
                asyncio.run_coroutine_threadsafe(self._run_async(fn, job), self._loop)
            else:
                self._tasks.put(job)
        return len(jobs)

    # ------------------------------------------------------------ handlers

    def _handler_thread(self) -> None:
        while True:
            job = self._tasks.get()
            if job is None:
                return
            fn = self._handlers.get(job.type)
            token = _current.set(job)
            try:
                if fn is None:
                    raise PermanentError(f"this worker has no handler for job type {job.type!r}")
                outcome = _completed(fn(job))
            except BaseException as e:  # noqa: BLE001 - every failure is the attempt's
                outcome = _failed(e)
            finally:
                _current.reset(token)
            self._finish(job, outcome)

    async def _run_async(self, fn: Handler, job: JobContext) -> None:
        _current.set(job)  # this task's own context
        try:
            outcome = _completed(await fn(job))  # type: ignore[misc]
        except BaseException as e:  # noqa: BLE001
            outcome = _failed(e)
        if job._log_lines:
            await asyncio.get_running_loop().run_in_executor(None, self._finish, job, outcome)
        else:
            self._finish(job, outcome)

    def _time_out(self, job: JobContext) -> None:
        """The attempt's time limit passed: the job is failed now (retried as
        any failure) and its handler told to stop; what it returns later is
        discarded. Its slot stays taken until it does return."""
        with self._lock:
            if job.id not in self._running or job.cancelled:
                return
            job._stop("timed_out")
            tail = b'"status":"failed","error":%s}' % json.dumps(
                f"timed out after {job.time_limit:g} s (the attempt's time limit)").encode()
            self._outbox.append(b'{"job_id":"%s","token":"%s",%s' % (job.id.encode(), job.token.encode(), tail))
            self._outbox_ids.append(job.id)
            self._lock.notify_all()

    def _finish(self, job: JobContext, outcome: Optional[bytes]) -> None:
        """A handler returned: frees its slot and queues its result (none
        for a job the server stopped: it is no longer ours)."""
        if job._timer is not None:
            job._timer.cancel()
        if job._log_lines:
            self._logs.flush_job(job)
        with self._lock:
            self._running.pop(job.id, None)
            self._progress_dirty.pop(job.id, None)
            if outcome is not None and not job.cancelled:
                self._outbox.append(b'{"job_id":"%s","token":"%s",%s' % (job.id.encode(), job.token.encode(), outcome))
                self._outbox_ids.append(job.id)
                self._sender_slots += 1  # the result's call claims the replacement
            else:
                self._free += 1
                self._poller_needed()
            self._lock.notify_all()

    # ------------------------------------------------------------ sender

    def _sender(self) -> None:
        """Sends finished attempts as soon as there are any, all that
        finished meanwhile in one call, claiming replacements in it."""
        client = self._client()
        while True:
            with self._lock:
                while not self._outbox and not self._closing.is_set():
                    self._lock.wait()
                if self._closing.is_set() and not self._outbox:
                    return
                batch, self._outbox = self._outbox, []
                ids, self._outbox_ids = self._outbox_ids, []
                self._sending = len(batch)
                self._free += self._sender_slots
                self._sender_slots = 0
                reserve = 0 if self._stopping else self._free
                self._free -= reserve
                held = self._held()
            try:
                answer = self._send_batch(client, held, batch, ids, reserve)
            except _Stop:
                self._unreserve(reserve)
                return
            except Exception as e:  # noqa: BLE001 - keep the results, try again
                log.error("sending %d results failed: %s", len(batch), e)
                with self._lock:
                    self._outbox[:0], self._outbox_ids[:0] = batch, ids
                    self._free += reserve
                self._closing.wait(1.0)
                continue
            finally:
                with self._lock:
                    self._sending = 0
                    self._lock.notify_all()
            claimed = self._take(answer, reserve)
            if self._burst and reserve and not claimed:
                with self._lock:  # asked for work with wait 0, got none
                    if not self._running and not self._outbox:
                        self._done.set()

    def _send_batch(self, client: httpx.Client, held: List[Dict[str, str]], batch: List[bytes], ids: List[str],
                    reserve: int) -> Dict[str, Any]:
        """Sends `batch`; a batch the server refuses as a whole (such as a
        result too big for one body) is sent item by item, and an item
        refused alone fails its job with the reason."""
        try:
            answer = self._exchange(client, held, batch, reserve, 0.0)
        except ApiError as e:
            if len(batch) > 1:
                answer = {"jobs": [], "stop": [], "finished": []}
                for item, jid in zip(batch, ids):
                    one = self._send_batch(client, held, [item], [jid], 0)
                    answer["finished"] += one.get("finished") or []
                    answer["stop"] += one.get("stop") or []
                return answer
            log.error("the server refused the result of job %s: %s", ids[0], e)
            head = batch[0].split(b',"status"', 1)[0]
            failed = head + b',"status":"failed","error":%s,"retry":false}' % json.dumps(
                f"the server refused the result: {e}").encode()
            if failed == batch[0]:
                return {"jobs": [], "stop": [], "finished": []}
            return self._send_batch(client, held, [failed], ids, 0)
        with self._lock:
            self.processed += len(batch)
        for jid, done in zip(ids, answer.get("finished") or []):
            if done.get("error"):
                log.info("job %s: result discarded: %s", jid, done.get("message") or done.get("error"))
        return answer

    # ------------------------------------------------------------ progress

    def _report_progress(self, job: JobContext, report: Dict[str, Any]) -> None:
        with self._lock:
            job._progress = {**(job._progress or {}), **report}
            self._progress_dirty[job.id] = job
        self._progress_wake.set()

    def _progress_sender(self) -> None:
        client = self._client()
        while not self._closing.is_set():
            self._progress_wake.wait()
            self._progress_wake.clear()
            with self._lock:
                jobs, self._progress_dirty = list(self._progress_dirty.values()), {}
                reports = [(job, job._progress) for job in jobs]
                for job in jobs:
                    job._progress = None
            for job, report in reports:
                if not report or job.cancelled:
                    continue
                try:
                    self._call(client, "/api/v1/workers/progress",
                               {"job_id": job.id, "token": job.token, **report}, retries=3)
                except ClaimLostError:
                    job._stop("claim_lost")
                except (ApiError, _Stop) as e:
                    log.debug("progress of job %s not sent: %s", job.id, e)


def _completed(result: Any) -> Optional[bytes]:
    """The finished item's tail for a result (a result that is not JSON
    fails the attempt for good: retrying returns the same)."""
    try:
        return b'"status":"completed","result":%s}' % json.dumps(result).encode()
    except (TypeError, ValueError) as e:
        return _failed(PermanentError(f"the handler's result is not JSON: {e}"))


def _failed(e: BaseException) -> Optional[bytes]:
    """The finished item's tail for a handler's exception; None when the
    handler stopped because the job was stopped (nothing to send)."""
    if isinstance(e, JobCancelled):
        return None
    if isinstance(e, PermanentError):
        return b'"status":"failed","error":%s,"retry":false}' % json.dumps(_describe(e)).encode()
    if isinstance(e, RetryLater):
        return b'"status":"failed","error":%s,"retry_after_seconds":%s}' % (
            json.dumps(_describe(e)).encode(), repr(e.seconds).encode())
    return b'"status":"failed","error":%s}' % json.dumps(
        "".join(traceback.format_exception(type(e), e, e.__traceback__))).encode()


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _abort(client: httpx.Client) -> None:
    """Shuts the sockets of `client`'s connections, so that a call blocked
    on one of them ends at once (an httpx client has no way to cancel a
    call from another thread; this reaches into httpcore's pool, and does
    nothing if that changes)."""
    try:
        connections = list(client._transport._pool.connections)  # type: ignore[attr-defined]
    except AttributeError:
        return
    for connection in connections:
        stream = getattr(getattr(connection, "_connection", None), "_network_stream", None)
        sock = getattr(stream, "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
