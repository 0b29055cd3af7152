"""`jobd.Client`: submit jobs and follow them over the jobd REST API."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import httpx

from ._http import make_client
from .errors import JobNotFoundError, raise_for
from .sse import iter_events

__all__ = ["Client", "TERMINAL"]

#: The statuses a job does not leave except by a restart.
TERMINAL = frozenset({"completed", "failed", "cancelled"})

#: Longest single long-poll (the API allows 300 s).
_POLL_SLICE = 30.0

JobRef = Union[str, Dict[str, Any]]


def _job_id(job: JobRef) -> str:
    """A job id from an id or a job dict (as `submit` returns)."""
    return job["job_id"] if isinstance(job, dict) else str(job)


class Client:
    """A client of one jobd server (or load balancer) at `url`, such as
    `http://127.0.0.1:8000`. `token` is sent as `Authorization: Bearer`.

    Every method raises `jobd.ApiError` (or its subclasses
    `JobNotFoundError`, `JobAlreadyCompletedError`) for an error answer and
    `httpx.HTTPError` when the server cannot be reached. A client keeps its
    connections alive; close it (or use it in a `with` block) when done."""

    def __init__(self, url: str, token: Optional[str] = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = make_client(self.url, token, timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the kept-alive connections."""
        self._http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = self._http.request(method, path, **kw)
        raise_for(response)
        return response.json() if response.content else None

    # ------------------------------------------------------------ jobs

    def submit(
        self,
        job_type: str,
        parameters: Optional[Dict[str, Any]] = None,
        *,
        user_id: Optional[str] = None,
        priority: Optional[int] = None,
        delay_seconds: Optional[float] = None,
        run_at: Union[None, str, datetime.datetime] = None,
        depends_on: Optional[Iterable[JobRef]] = None,
        max_attempts: Optional[int] = None,
        timeout_seconds: Optional[float] = None,
        idempotency_key: Optional[str] = None,
        expires_in_seconds: Optional[float] = None,
        debounce: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Submits a job and returns it (the job object, `job_id` first).

        `run_at` (a datetime, or RFC 3339 text; naive means UTC) or
        `delay_seconds` schedules it for later (not both); `depends_on`
        (ids or job dicts) makes it wait until those jobs completed;
        `max_attempts` and `timeout_seconds` override the job type's.
        With `idempotency_key`, a repeat of the same submission returns the
        job the first one stored (an `ApiError` 422 for another body).
        `expires_in_seconds`: cancel the job as `expired` unless it starts
        by then. `debounce` (`{"key", "period_seconds", "max_wait_seconds"}`):
        while the job an earlier submission with the key stored still
        waits, this one returns that job, now with these parameters."""
        body: Dict[str, Any] = {"job_type": job_type}
        if parameters is not None:
            body["parameters"] = parameters
        if user_id is not None:
            body["user_id"] = user_id
        if priority is not None:
            body["priority"] = priority
        if delay_seconds is not None:
            body["delay_seconds"] = delay_seconds
        if run_at is not None:
            body["run_at"] = run_at.isoformat() if isinstance(run_at, datetime.datetime) else run_at
        if depends_on is not None:
            body["depends_on"] = [_job_id(j) for j in depends_on]
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        if expires_in_seconds is not None:
            body["expires_in_seconds"] = expires_in_seconds
        if debounce is not None:
            body["debounce"] = debounce
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        return self._call("POST", "/api/v1/jobs", json=body, headers=headers)

    def submit_batch(self, jobs: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Submits up to 1,000 jobs in one call, all or none, and returns
        them in order. Each entry is a body as `POST /api/v1/jobs` takes
        it (`{"job_type", "parameters", ...}`); its `depends_on` may name an
        earlier entry by its position (an int). A bad entry raises
        `ApiError` 400 whose message names its position; nothing is
        stored then."""
        return self._call("POST", "/api/v1/jobs/batch", json={"jobs": list(jobs)})["jobs"]

    def get(self, job_id: JobRef) -> Dict[str, Any]:
        """The job now (`GET /api/v1/jobs/status/{id}`)."""
        return self._call("GET", f"/api/v1/jobs/status/{_job_id(job_id)}")

    def wait(self, job_id: JobRef, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits until the job is completed, failed or cancelled and returns
        it, by long-poll (no polling loop). Raises `TimeoutError` after
        `timeout` seconds (None: no limit)."""
        jid = _job_id(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get(jid)
        while job["status"] not in TERMINAL:
            left = _POLL_SLICE if deadline is None else min(_POLL_SLICE, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"job {jid} still {job['status']} after {timeout} s")
            job = self._call(
                "GET",
                f"/api/v1/jobs/status/{jid}/poll",
                params={"current_status": job["status"], "timeout": f"{left:.3f}"},
                timeout=httpx.Timeout(30.0, read=left + 30.0),
            )
        return job

    def stream(self, job_id: JobRef) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Follows the job's Server-Sent Events: yields `(event_name, job)`
        for each `job_update` and the final `job_complete`, then ends.

        The stream's later `job_update`s carry only what changed; each is
        merged into the job as last seen, so every `job` yielded is whole.
        A job that leaves the store meanwhile raises `JobNotFoundError`."""
        jid = _job_id(job_id)
        job: Dict[str, Any] = {}
        with self._http.stream(
            "GET", f"/api/v1/jobs/status/{jid}/stream", timeout=httpx.Timeout(30.0, read=None)
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise_for(response)
            for name, data in iter_events(response.iter_lines()):
                try:
                    payload = json.loads(data)
                except ValueError:
                    continue
                if name == "error":
                    raise JobNotFoundError(404, payload.get("error", "JobNotFoundError"),
                                           payload.get("message", ""), payload)
                job = {**job, **payload}
                yield name, dict(job)
                if name == "job_complete":
                    return

    def cancel(self, job_id: JobRef) -> Dict[str, Any]:
        """Cancels a pending, scheduled or running job (a running handler is
        told to stop). Returns `{"job_id", "status", "message", "job"}`.
        Raises `JobAlreadyCompletedError` (`.current_status`) if it ended."""
        return self._call("POST", f"/api/v1/jobs/cancel/{_job_id(job_id)}")

    def restart(self, job_id: JobRef, parameters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Puts a failed or cancelled job back to pending under the same id,
        with fresh `parameters` if given. Returns `{"job_id", "status",
        "message", "job"}`; `ApiError` `JobNotRestartableError` otherwise."""
        body = {"parameters": parameters} if parameters is not None else None
        return self._call("POST", f"/api/v1/jobs/restart/{_job_id(job_id)}", json=body)

    def stats(self) -> Dict[str, Any]:
        """The queue's statistics (`GET /api/v1/jobs/queue/stats`)."""
        return self._call("GET", "/api/v1/jobs/queue/stats")

    def list(
        self,
        status: Optional[str] = None,
        user_id: Optional[str] = None,
        job_type: Optional[str] = None,
        limit: Optional[int] = None,
        *,
        include: Optional[Iterable[str]] = None,
        page_size: int = 100,
    ) -> Iterator[Dict[str, Any]]:
        """Iterates over the matching jobs, newest first, following every
        page (`next_cursor`). `limit` stops after that many jobs (None:
        all). The jobs are summaries without `parameters` and `result`
        unless `include` names them."""
        params: Dict[str, Any] = {}
        if status:
            params["status"] = status
        if user_id:
            params["user_id"] = user_id
        if job_type:
            params["job_type"] = job_type
        if include:
            params["include"] = ",".join(include)
        left = limit
        while left is None or left > 0:
            params["limit"] = min(page_size, left) if left is not None else page_size
            page = self._call("GET", "/api/v1/jobs", params=params)
            for job in page["jobs"]:
                yield job
            if left is not None:
                left -= len(page["jobs"])
            cursor = page.get("next_cursor")
            if not cursor or not page["jobs"]:
                return
            params["cursor"] = cursor

    def artifacts(self, job_id: JobRef) -> List[Dict[str, Any]]:
        """The job's artifacts (`name`, `size`, `media_type`, `url`): a
        pipeline stage's output files, a document job's `input.json`."""
        return self._call("GET", f"/api/v1/jobs/status/{_job_id(job_id)}/artifacts")["artifacts"]

    def download(self, job_id: JobRef, name: str, path: Union[str, os.PathLike]) -> pathlib.Path:
        """Streams the job's artifact `name` into the file `path` (written
        beside it under a temporary name, renamed when complete) and
        returns the path."""
        target = pathlib.Path(path)
        partial = target.with_name(f".{target.name}.part")
        url = f"/api/v1/jobs/status/{_job_id(job_id)}/artifacts/{name}"
        with self._http.stream("GET", url) as response:
            if response.is_error:
                response.read()
                raise_for(response)
            try:
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        return target

    def logs(self, job_id: JobRef) -> Any:
        """The job's log lines (`GET /api/v1/jobs/status/{id}/logs`), as the
        server answers them."""
        return self._call("GET", f"/api/v1/jobs/status/{_job_id(job_id)}/logs")

