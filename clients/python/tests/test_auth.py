"""The package against a server with `auth = "token"`: a user's Client
and a worker-role Worker, each with its own token, run a job end to end;
no token, or another user's job, is refused as the server documents."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

import jobd

from conftest import Server


def make_token(server: Server, admin: str, **body: Any) -> str:
    answer = httpx.post(server.url + "/api/v1/tokens", json=body,
                        headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def test_a_user_client_and_a_worker_token_run_a_job(start_server, run_worker) -> None:
    admin = secrets.token_hex(32)
    server = start_server("--auth", "token", env={"JOBD_ADMIN_TOKEN": admin})
    alice = jobd.Client(server.url, token=make_token(server, admin, user_id="alice", role="user"))
    bob = jobd.Client(server.url, token=make_token(server, admin, user_id="bob", role="user"))
    worker = jobd.Worker(server.url, concurrency=1, token=make_token(server, admin, user_id="w", role="worker"))

    @worker.handler("py_auth")
    def handle(job: jobd.JobContext) -> Any:
        return {"user": job.user_id}

    run_worker(worker)
    job = alice.submit("py_auth", {})
    assert job["user_id"] == "alice"
    assert alice.wait(job, timeout=10)["result"] == {"user": "alice"}

    with pytest.raises(jobd.JobNotFoundError):
        bob.get(job["job_id"])
    with pytest.raises(jobd.ApiError) as refused:
        server.client.submit("py_auth", {})
    assert (refused.value.status, refused.value.error) == (401, "UnauthorizedError")
    with pytest.raises(jobd.ApiError) as forbidden:
        alice.submit("py_auth", {}, user_id="bob")
    assert (forbidden.value.status, forbidden.value.error) == (403, "ForbiddenError")
    for client in (alice, bob):
        client.close()
