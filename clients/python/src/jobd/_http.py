"""The one way this package talks HTTP: an `httpx.Client` with keep-alive,
the bearer token and the base URL."""

from __future__ import annotations

from typing import Optional

import httpx

__all__ = ["make_client", "user_agent"]

user_agent = "jobd-python/0.1"


def make_client(url: str, token: Optional[str], timeout: float = 30.0) -> httpx.Client:
    """A keep-alive client for `url`; every request carries `token` as
    `Authorization: Bearer` when given. Each thread that makes calls owns
    one (an httpx client is thread-safe, but one per thread keeps a
    long-poll from holding up another thread's connection)."""
    headers = {"User-Agent": user_agent}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
