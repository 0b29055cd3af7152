"""`JobContext`: what a handler receives, one per attempt."""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .errors import JobCancelled

if TYPE_CHECKING:  # pragma: no cover
    from .worker import _Run

__all__ = ["JobContext", "current_job"]

#: The job whose handler runs in this thread or asyncio task (for the
#: per-job capture of `logging`).
_current: "contextvars.ContextVar[Optional[JobContext]]" = contextvars.ContextVar("jobd_job", default=None)


def current_job() -> Optional["JobContext"]:
    """The job whose handler is running in this thread or task, if any."""
    return _current.get()


class JobContext:
    """One attempt of one job, as its handler sees it.

    - `id`, `type`, `parameters`, `user_id`, `attempt` (1 for the first),
      `dependencies` (the completed jobs it depends on, with their
      `result`), and `job`, the whole job object as claimed;
    - `progress(...)` reports progress without blocking (the latest report
      is sent, earlier unsent ones are dropped);
    - `cancelled` is true once the job must stop: the server told this
      worker so (cancelled, or recovered from it), its time limit
      (`time_limit`, seconds) passed, or the worker is shutting down past
      its grace period (`stop_reason` says which); `raise_if_cancelled()` raises
      `jobd.JobCancelled` then. A stopped job's result is discarded;
    - `log(message)` adds a line to the job's log (and so does `logging`
      inside the handler)."""

    def __init__(self, worker: "_Run", entry: Dict[str, Any]) -> None:
        job = entry.get("job") or {}
        self._worker = worker
        self.token: str = entry["token"]
        self.id: str = entry["job_id"]
        self.job: Dict[str, Any] = job
        self.type: str = job.get("job_type", "")
        self.parameters: Dict[str, Any] = job.get("parameters") or {}
        self.user_id: Optional[str] = job.get("user_id")
        self.attempt: int = int(job.get("attempts") or 1)
        self.dependencies: List[Dict[str, Any]] = entry.get("dependencies") or []
        limit = entry.get("time_limit_seconds")
        #: How long this attempt may run (seconds), None: no limit. Past it
        #: the worker fails the attempt and sets `cancelled`.
        self.time_limit: Optional[float] = float(limit) if limit is not None else None
        self._timer: Optional[threading.Timer] = None
        self._stopped = threading.Event()
        self.stop_reason: Optional[str] = None
        # Progress not yet sent: the latest report only (guarded by the
        # worker's progress lock).
        self._progress: Optional[Dict[str, Any]] = None
        # Log lines not yet sent, with their stream (guarded by the
        # worker's log lock), and a line printed in part.
        self._log_lines: List[Tuple[str, str]] = []
        self._stdout_partial = ""

    def __repr__(self) -> str:
        return f"<JobContext {self.type} {self.id} attempt {self.attempt}>"

    @property
    def cancelled(self) -> bool:
        """True once the job must stop (see the class doc)."""
        return self._stopped.is_set()

    def raise_if_cancelled(self) -> None:
        """Raises `jobd.JobCancelled` if the job must stop."""
        if self._stopped.is_set():
            raise JobCancelled(f"job {self.id} stopped: {self.stop_reason}")

    def wait_cancelled(self, timeout: Optional[float] = None) -> bool:
        """Blocks up to `timeout` seconds (None: for ever) until the job must
        stop; returns `cancelled`. A handler that waits on something else
        can use this as its sleep."""
        return self._stopped.wait(timeout)

    def progress(
        self,
        fraction: Optional[float] = None,
        items_processed: Optional[int] = None,
        total_items: Optional[int] = None,
    ) -> None:
        """Reports progress: `fraction` in 0..1, and/or item counts. Returns
        at once; a background thread sends the latest report."""
        report: Dict[str, Any] = {}
        if fraction is not None:
            report["progress"] = float(fraction)
        if items_processed is not None:
            report["items_processed"] = int(items_processed)
        if total_items is not None:
            report["total_items"] = int(total_items)
        if report and not self._stopped.is_set():
            self._worker._report_progress(self, report)

    def log(self, message: str) -> None:
        """Adds `message` (one or more lines) to the job's log. Best
        effort: lines that cannot be sent are dropped, never the job."""
        self._worker._logs.add(self, str(message))

    def _stop(self, reason: str) -> None:
        if not self._stopped.is_set():
            self.stop_reason = reason
            self._stopped.set()
