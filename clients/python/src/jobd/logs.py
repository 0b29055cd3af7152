"""Per-job logs: `job.log(...)`, `logging` and `print` inside a handler,
sent to `POST /api/v1/workers/logs` in small batches by one background
thread (`job.log` and `logging` as the job's `log` stream, `print` and other
writes to `sys.stdout` as its `stdout` stream).

Best effort by design: a failed post drops its lines and never fails the
job; a server without the endpoint (404 `NotFoundError`) turns shipping off
for the worker's life. A job's last lines are sent before its result (the
claim token they quote ends with the attempt)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, TextIO, Tuple

import httpx

from .context import _current

if TYPE_CHECKING:  # pragma: no cover
    from .context import JobContext

__all__ = ["LogShipper", "JobLogHandler", "StdoutTee"]

log = logging.getLogger("jobd.worker")

#: Lines per post, and the most lines kept per job between posts (the
#: oldest are dropped beyond it, as the server keeps a capped tail).
BATCH_LINES = 200
MAX_BUFFERED = 5000
#: How often buffered lines of running jobs are sent.
FLUSH_SECONDS = 0.25


class LogShipper:
    """Buffers lines per job and sends them; `client_factory` makes the
    shipper's own keep-alive client."""

    def __init__(self, make_client) -> None:  # type: ignore[no-untyped-def]
        self._make_client = make_client
        self._lock = threading.Lock()
        self._dirty: Dict[str, "JobContext"] = {}
        self._wake = threading.Event()
        self._stopped = False
        self.enabled = True
        self._thread: Optional[threading.Thread] = None
        self._local = threading.local()

    def add(self, job: "JobContext", message: str, stream: str = "log") -> None:
        if not self.enabled:
            return
        lines = [(stream, line) for line in (message.splitlines() or [""])]
        with self._lock:
            buf = job._log_lines
            buf.extend(lines)
            if len(buf) > MAX_BUFFERED:
                del buf[: len(buf) - MAX_BUFFERED]
            self._dirty[job.id] = job
            start = self._thread is None
            if start:
                self._thread = threading.Thread(target=self._loop, name="jobd-logs", daemon=True)
        if start and self._thread is not None:
            self._thread.start()
        if len(job._log_lines) >= BATCH_LINES:
            self._wake.set()

    def flush_job(self, job: "JobContext") -> None:
        """Sends what `job` has buffered, from the calling thread (a job
        that ends: before its result)."""
        with self._lock:
            self._dirty.pop(job.id, None)
            lines, job._log_lines = job._log_lines, []
        if lines:
            self._send(job, lines, self._thread_client())

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _thread_client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make_client()
        return client

    def _loop(self) -> None:
        client = self._make_client()
        while not self._stopped:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            with self._lock:
                jobs, self._dirty = list(self._dirty.values()), {}
                batches = [(job, job._log_lines) for job in jobs]
                for job in jobs:
                    job._log_lines = []
            for job, lines in batches:
                if lines:
                    self._send(job, lines, client)
        client.close()

    def _send(self, job: "JobContext", lines: List[Tuple[str, str]], client: httpx.Client) -> None:
        if not self.enabled:
            return
        batches: List[Tuple[str, List[str]]] = []  # runs of one stream, at most BATCH_LINES each
        for stream, line in lines:
            if not batches or batches[-1][0] != stream or len(batches[-1][1]) >= BATCH_LINES:
                batches.append((stream, []))
            batches[-1][1].append(line)
        for stream, texts in batches:
            body = {"job_id": job.id, "token": job.token, "lines": texts, "stream": stream}
            try:
                response = client.post("/api/v1/workers/logs", json=body)
            except httpx.HTTPError as e:
                log.debug("log lines of job %s dropped: %s", job.id, e)
                return
            if response.status_code == 404 and _error_name(response) == "NotFoundError":
                log.info("the server has no /api/v1/workers/logs: job logs stay local")
                self.enabled = False
                return
            if response.status_code >= 400:
                log.debug("log lines of job %s dropped: %s %s", job.id, response.status_code, response.text[:200])
                return


def _error_name(response: httpx.Response) -> Optional[str]:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


class JobLogHandler(logging.Handler):
    """A `logging` handler that copies records emitted inside a handler (in
    its thread, or its asyncio task) to that job's log. Records emitted
    outside any job pass by untouched."""

    def __init__(self, shipper: LogShipper) -> None:
        super().__init__()
        self._shipper = shipper
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        job = _current.get()
        if job is None or record.name.startswith("jobd."):
            return
        try:
            self._shipper.add(job, self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class StdoutTee:
    """`sys.stdout` while a worker runs: every write goes to the real stdout
    as before, and what a handler writes (in its thread or asyncio task) is
    also added to its job's log, line by line, as the `stdout` stream."""

    def __init__(self, shipper: LogShipper, real: TextIO) -> None:
        self._shipper = shipper
        self.real = real

    def write(self, text: str) -> int:
        n = self.real.write(text)
        job = _current.get()
        if job is not None and text:
            pending = job._stdout_partial + text
            *complete, job._stdout_partial = pending.split("\n")
            if complete:
                self._shipper.add(job, "\n".join(complete), "stdout")
        return n

    def flush(self) -> None:
        self.real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)
