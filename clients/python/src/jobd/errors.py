"""The exceptions of the package: API errors raised by the client, and the
ones a handler raises to say how its attempt failed."""

from __future__ import annotations

from typing import Any, Optional

import httpx


class ApiError(Exception):
    """An error answer of the jobd API (`{"error": "...Error", "message": ...}`).

    `status` is the HTTP status, `error` the error's name (such as
    `ValidationError`), `body` the decoded answer (a dict, or the raw text
    when the answer was not JSON)."""

    def __init__(self, status: int, error: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.body = body


class JobNotFoundError(ApiError):
    """404 `JobNotFoundError`: no such job."""


class JobAlreadyCompletedError(ApiError):
    """409 `JobAlreadyCompletedError`: a cancel of a job that already ended;
    `current_status` says how it ended."""

    @property
    def current_status(self) -> Optional[str]:
        return self.body.get("current_status") if isinstance(self.body, dict) else None


class ClaimLostError(ApiError):
    """409 `ClaimLostError`: the worker's claim on a job is gone (the job was
    cancelled, or recovered after its lease); the update changed nothing."""


_BY_NAME = {
    "JobNotFoundError": JobNotFoundError,
    "JobAlreadyCompletedError": JobAlreadyCompletedError,
    "ClaimLostError": ClaimLostError,
}


def raise_for(response: httpx.Response) -> None:
    """Raises the matching `ApiError` subclass unless the answer is a 2xx."""
    if response.status_code < 400:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    name = body.get("error") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    cls = _BY_NAME.get(name or "", ApiError)
    raise cls(response.status_code, name or f"HTTP{response.status_code}", message or str(body)[:500], body)


class PermanentError(Exception):
    """Raised by a handler: the attempt fails and the job is not retried,
    whatever attempts are left (bad input that retrying cannot fix)."""


class RetryLater(Exception):
    """Raised by a handler: the attempt fails and the job is retried after
    `seconds` (if attempts are left), such as after a rate limit's reset."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry in {seconds} s")
        self.seconds = float(seconds)


class JobCancelled(Exception):
    """Raised by `JobContext.raise_if_cancelled()` once the job was
    cancelled, recovered from this worker or timed out: the handler should
    stop; its result is discarded."""

