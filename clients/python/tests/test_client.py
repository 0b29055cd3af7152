"""jobd.Client against a real `jobd serve`: every method and error."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest

import jobd

from conftest import Server


def test_submit_get_wait(server: Server) -> None:
    c = server.client
    job = c.submit("noop", {"n": 1}, user_id="alice", priority=5, max_attempts=2, timeout_seconds=9)
    assert job["status"] in ("pending", "running", "completed")
    assert (job["job_type"], job["user_id"], job["priority"], job["max_attempts"], job["timeout_seconds"]) == (
        "noop", "alice", 5, 2, 9)
    assert c.get(job["job_id"])["parameters"] == {"n": 1}
    done = c.wait(job, timeout=10)
    assert done["status"] == "completed" and done["job_id"] == job["job_id"]


def test_submit_schedules_and_depends(server: Server) -> None:
    c = server.client
    delayed = c.submit("noop", delay_seconds=3600)
    at = c.submit("noop", run_at=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    utc_now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    naive = c.submit("noop", run_at=utc_now + datetime.timedelta(hours=1))
    for j in (delayed, at, naive):
        assert j["status"] == "scheduled" and j["scheduled_for"]
    waiting = c.submit("noop", depends_on=[delayed, at["job_id"]])
    assert waiting["status"] == "scheduled"
    assert waiting["depends_on"] == [delayed["job_id"], at["job_id"]] and waiting["waiting_dependencies"] == 2
    with pytest.raises(TimeoutError):
        c.wait(delayed, timeout=0.3)
    for j in (waiting, delayed, at, naive):
        c.cancel(j)


def test_stream_until_complete(server: Server) -> None:
    c = server.client
    job = c.submit("sleep", {"seconds": 0.4, "steps": 4})
    events = list(c.stream(job))
    names = [name for name, _ in events]
    assert names[-1] == "job_complete" and set(names[:-1]) <= {"job_update"}
    assert events[-1][1]["status"] == "completed"
    # Partial updates are merged: every job yielded is whole.
    assert all(j["job_type"] == "sleep" for _, j in events)
    assert [j["progress"] for _, j in events] == sorted(j["progress"] for _, j in events)


def test_cancel_and_restart(server: Server) -> None:
    c = server.client
    job = c.submit("sleep", {"seconds": 60, "steps": 60}, user_id="carol")
    cancelled = c.cancel(job)
    assert cancelled["status"] == "cancelled" and cancelled["job"]["status"] == "cancelled"
    with pytest.raises(jobd.JobAlreadyCompletedError) as e:
        c.cancel(job)
    assert (e.value.status, e.value.error, e.value.current_status) == (409, "JobAlreadyCompletedError", "cancelled")
    assert isinstance(e.value, jobd.ApiError) and e.value.body["job_id"] == job["job_id"]
    restarted = c.restart(job, parameters={"seconds": 0.1, "steps": 1})
    assert restarted["job"]["parameters"] == {"seconds": 0.1, "steps": 1}
    assert c.wait(job, timeout=10)["status"] == "completed"
    with pytest.raises(jobd.ApiError) as e:
        c.restart(job)
    assert (e.value.status, e.value.error) == (409, "JobNotRestartableError")
    again = c.submit("sleep", {"seconds": 0.1, "fail_with": "boom"})
    assert c.wait(again, timeout=10)["status"] == "failed"
    assert c.restart(again)["status"] == "pending"  # no body: the same parameters
    c.wait(again, timeout=10)


def test_errors(server: Server) -> None:
    c = server.client
    with pytest.raises(jobd.JobNotFoundError) as e:
        c.get(str(uuid.uuid4()))
    assert (e.value.status, e.value.error) == (404, "JobNotFoundError")
    for call in (c.wait, c.cancel, c.restart, lambda j: list(c.stream(j))):
        with pytest.raises(jobd.JobNotFoundError):
            call(str(uuid.uuid4()))
    with pytest.raises(jobd.ApiError) as e:
        c.get("not-a-uuid")
    assert (e.value.status, e.value.error) == (400, "InvalidJobIdError") and "message" in e.value.body
    with pytest.raises(jobd.ApiError) as e:
        c.submit("no_such_type")
    assert (e.value.status, e.value.error) == (400, "UnknownJobTypeError")
    with pytest.raises(jobd.ApiError) as e:
        c.submit("noop", delay_seconds=1, run_at="2030-01-01T00:00:00Z")
    assert (e.value.status, e.value.error) == (400, "ValidationError")
    assert not isinstance(e.value, jobd.JobNotFoundError)


def test_list_every_page(server: Server) -> None:
    c = server.client
    user = f"lister-{uuid.uuid4().hex[:8]}"
    ids = [c.submit("noop", {"i": i}, user_id=user)["job_id"] for i in range(7)]
    for i in ids:
        c.wait(i, timeout=10)
    listed = [j["job_id"] for j in c.list(user_id=user, page_size=3)]
    assert listed == ids[::-1]  # newest first, across three pages
    assert len(list(c.list(user_id=user, limit=5, page_size=2))) == 5
    assert len(list(c.list(status="completed", user_id=user, job_type="noop"))) == 7
    assert list(c.list(status="failed", user_id=user)) == []
    with_params = next(c.list(user_id=user, include=["parameters"]))
    assert with_params["parameters"] == {"i": 6}


def test_stats(server: Server) -> None:
    stats = server.client.stats()
    for key in ("pending_jobs", "running_jobs", "completed_jobs", "total_jobs", "active_workers",
                "global_max_concurrent_jobs", "per_user_max_concurrent_jobs"):
        assert key in stats
    assert stats["queue_type"] == server.store


def test_token_is_sent(server: Server) -> None:
    seen = []
    c = jobd.Client(server.url, token="s3cret")
    c._http.event_hooks["request"].append(lambda r: seen.append(r.headers.get("authorization")))
    c.stats()
    assert seen == ["Bearer s3cret"]
    c.close()


def test_artifacts_list_and_download(server: Server, tmp_path) -> None:
    c = server.client
    text = "The telescope tracked the planets. " * 200
    job = c.submit("document_processing", {"text": text, "name": "stars.txt", "chunk_size": 400})
    assert "text" not in job["parameters"] and job["parameters"]["input"]["documents"] == 1
    done = c.wait(job, timeout=30)
    assert done["status"] == "completed", done
    listed = {a["name"]: a for a in c.artifacts(job)}
    assert set(listed) == {"chunks.jsonl", "input.json"}
    assert listed["chunks.jsonl"]["media_type"] == "application/jsonl"
    path = c.download(job, "chunks.jsonl", tmp_path / "chunks.jsonl")
    assert path.stat().st_size == listed["chunks.jsonl"]["size"]
    chunks = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(chunks) == done["result"]["chunks"] and chunks[0]["source"] == "stars.txt"
    assert not list(tmp_path.glob(".*.part"))
    with pytest.raises(jobd.ApiError) as missing:
        c.download(job, "train.jsonl", tmp_path / "train.jsonl")
    assert missing.value.status == 404 and missing.value.error == "ArtifactNotFoundError"
    assert not (tmp_path / "train.jsonl").exists()


def test_idempotent_submit(server: Server) -> None:
    c = server.client
    key = f"order-{uuid.uuid4()}"
    first = c.submit("noop", {"order": 1}, user_id="alice", idempotency_key=key)
    again = c.submit("noop", {"order": 1}, user_id="alice", idempotency_key=key)
    assert again["job_id"] == first["job_id"]
    with pytest.raises(jobd.ApiError) as mismatch:
        c.submit("noop", {"order": 2}, user_id="alice", idempotency_key=key)
    assert mismatch.value.status == 422 and mismatch.value.error == "IdempotencyKeyMismatchError"


def test_debounced_and_expiring_submit(server: Server) -> None:
    c = server.client
    debounce = {"key": f"d-{uuid.uuid4()}", "period_seconds": 60}
    first = c.submit("noop", {"n": 1}, user_id="alice", debounce=debounce, expires_in_seconds=600)
    again = c.submit("noop", {"n": 2}, user_id="alice", debounce=debounce, expires_in_seconds=600)
    assert again["job_id"] == first["job_id"] and again["parameters"] == {"n": 2}
    assert first["status"] == "scheduled" and "expires_at" in again


def test_submit_batch(server: Server) -> None:
    c = server.client
    jobs = c.submit_batch([
        {"job_type": "noop", "parameters": {"i": 0}, "user_id": "alice"},
        {"job_type": "noop", "parameters": {"i": 1}, "user_id": "alice", "depends_on": [0]},
    ])
    assert [j["parameters"]["i"] for j in jobs] == [0, 1]
    assert jobs[1]["depends_on"] == [jobs[0]["job_id"]]
    assert c.wait(jobs[1], timeout=10)["status"] == "completed"
    with pytest.raises(jobd.ApiError) as bad:
        c.submit_batch([{"job_type": "noop"}, {"job_type": "no-such-type"}])
    assert bad.value.status == 400 and "jobs[1]" in bad.value.message
