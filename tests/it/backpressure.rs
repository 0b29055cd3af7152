//! Backpressure over HTTP: the per-user quota of queued jobs (both stores,
//! and two API nodes racing on one Redis), the per-node submission rate,
//! and the caps on open streams and long-polls. Every refusal is a 429 in
//! the error shape with a `Retry-After` header, and stores nothing.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind, wait_until};

fn args(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|s| (*s).to_owned()).collect()
}

/// POSTs `body` to `path` as `user` (`X-User-Id`); the status, the
/// `Retry-After` header and the JSON body.
async fn post_as(
    server: &Server,
    user: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut request = server.http.post(server.at(path)).header("X-User-Id", user);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.expect("POST")).await
}

/// The status, `Retry-After` and body of `response`, read whole.
async fn answer(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ASCII").to_owned());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Asserts a 429 with `error` and a `Retry-After` of whole seconds (at
/// least 1); returns the seconds.
fn assert_429(answer: &(u16, Option<String>, Value), error: &str) -> u64 {
    let (status, retry_after, body) = answer;
    assert_eq!(*status, 429, "{body}");
    assert_eq!(body["error"], error, "{body}");
    let seconds: u64 = retry_after
        .as_deref()
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!(seconds >= 1, "{seconds}");
    seconds
}

/// How many jobs `user` has in the store, by the listing.
async fn jobs_of(server: &Server, user: &str) -> usize {
    let (status, page) = server
        .get(&format!("/api/v1/jobs?user_id={user}&limit=1000"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["jobs"].as_array().expect("jobs").len()
}

/// A `noop` due in 3 s: scheduled, so it counts against the quota for a
/// while, then runs.
fn delayed_noop() -> Value {
    json!({"job_type": "noop", "delay_seconds": 3})
}

async fn the_quota_refuses_with_a_429_stores_nothing_and_frees_as_jobs_finish(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &args(&["--max-queued-jobs-per-user", "3"]));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, _, job) =
            post_as(&server, "alice", "/api/v1/jobs", Some(delayed_noop())).await;
        assert_eq!(status, 201, "{job}");
        ids.push(job["job_id"].as_str().expect("job_id").to_owned());
    }
    let refused = post_as(&server, "alice", "/api/v1/jobs", Some(delayed_noop())).await;
    assert_eq!(assert_429(&refused, "QuotaExceededError"), 5);
    assert_eq!(jobs_of(&server, "alice").await, 3, "nothing stored");

    // A chain that would cross the quota stores no stage: the pipeline's
    // four jobs against bob's quota of three.
    let pipeline =
        json!({"documents": [{"name": "a.md", "text": "Backpressure keeps queues short."}]});
    let refused = post_as(&server, "bob", "/api/v1/jobs/pipeline", Some(pipeline)).await;
    assert_429(&refused, "QuotaExceededError");
    assert_eq!(jobs_of(&server, "bob").await, 0, "no stage stored");

    // A restart is a way back into the queue: refused at the quota.
    let cancelled = &ids[0].clone();
    let (status, _, _) = post_as(
        &server,
        "alice",
        &format!("/api/v1/jobs/cancel/{cancelled}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, job) = post_as(&server, "alice", "/api/v1/jobs", Some(delayed_noop())).await;
    assert_eq!(status, 201, "{job}");
    let refused = post_as(
        &server,
        "alice",
        &format!("/api/v1/jobs/restart/{cancelled}"),
        None,
    )
    .await;
    assert_429(&refused, "QuotaExceededError");
    assert_eq!(server.job(cancelled).await["status"], "cancelled");

    // Once the queued jobs have run, alice submits again.
    ids[0] = job["job_id"].as_str().expect("job_id").to_owned();
    for id in &ids {
        server
            .wait_for_status(id, "completed", Duration::from_secs(30))
            .await;
    }
    for _ in 0..3 {
        let (status, _, job) =
            post_as(&server, "alice", "/api/v1/jobs", Some(delayed_noop())).await;
        assert_eq!(status, 201, "{job}");
    }
}

async fn two_api_nodes_racing_accept_exactly_the_quota(kind: StoreKind) {
    const QUOTA: usize = 100;
    const SUBMISSIONS: usize = 1_000;
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let flags = args(&["--workers", "0", "--max-queued-jobs-per-user", "100"]);
    let nodes = [
        Server::serve(&scratch, &flags),
        Server::serve(&scratch, &flags),
    ];
    let body = json!({"job_type": "noop", "user_id": "racer"});
    let started = Instant::now();
    let requests = (0..SUBMISSIONS).map(|i| {
        let node = &nodes[i % 2];
        let request = node.http.post(node.at("/api/v1/jobs")).json(&body);
        async move {
            let response = request.send().await.expect("submit");
            response.status().as_u16()
        }
    });
    // 64 in flight at once, split across both nodes.
    let statuses: Vec<u16> = tokio::time::timeout(
        Duration::from_secs(120),
        futures::stream::iter(requests)
            .buffer_unordered(64)
            .collect(),
    )
    .await
    .expect("1,000 submissions within 2 minutes");
    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (created, refused),
        (QUOTA, SUBMISSIONS - QUOTA),
        "other answers: {:?} after {:?}",
        statuses
            .iter()
            .filter(|s| **s != 201 && **s != 429)
            .collect::<Vec<_>>(),
        started.elapsed()
    );
    for node in &nodes {
        let stats = node.stats().await;
        assert_eq!(stats["pending_jobs"], QUOTA, "{stats}");
    }
}

crate::for_each_store!(
    the_quota_refuses_with_a_429_stores_nothing_and_frees_as_jobs_finish,
    two_api_nodes_racing_accept_exactly_the_quota,
);

#[tokio::test]
async fn the_submission_rate_refuses_with_a_429_and_recovers_after_the_window() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve(
        &scratch,
        &args(&[
            "--workers",
            "0",
            "--submit-rate-per-user",
            "2",
            "--submit-burst-per-user",
            "2",
        ]),
    );
    let noop = || Some(json!({"job_type": "noop"}));
    for _ in 0..2 {
        let (status, _, job) = post_as(&server, "alice", "/api/v1/jobs", noop()).await;
        assert_eq!(status, 201, "{job}");
    }
    let refused = post_as(&server, "alice", "/api/v1/jobs", noop()).await;
    assert_429(&refused, "RateLimitedError");
    assert_eq!(jobs_of(&server, "alice").await, 2, "nothing stored");
    // Another user has a bucket of its own.
    let (status, _, _) = post_as(&server, "bob", "/api/v1/jobs", noop()).await;
    assert_eq!(status, 201);

    // After the window, alice submits again.
    wait_until(
        "alice's bucket to refill",
        Duration::from_secs(5),
        || async {
            let (status, _, _) = post_as(&server, "alice", "/api/v1/jobs", noop()).await;
            (status == 201).then_some(())
        },
    )
    .await;

    // A chain of four costs four tokens: a full bucket of two lets it
    // through in debt, and the next job waits for three tokens' time
    // (1.5 s, less what passed meanwhile); at one token a chain, it would
    // pass.
    let pipeline = json!({"documents": [{"name": "a.md", "text": "Rates pace submissions."}]});
    let (status, _, body) =
        post_as(&server, "carol", "/api/v1/jobs/pipeline", Some(pipeline)).await;
    assert_eq!(status, 201, "{body}");
    let refused = post_as(&server, "carol", "/api/v1/jobs", noop()).await;
    let wait = assert_429(&refused, "RateLimitedError");
    assert!((1..=2).contains(&wait), "{wait}");
}

/// Opens a GET (a stream or long-poll) as `user`; the response, once its
/// head arrived.
async fn open_as(server: &Server, user: &str, path: &str) -> reqwest::Response {
    server
        .http
        .get(server.at(path))
        .header("X-User-Id", user)
        .send()
        .await
        .expect("GET")
}

/// The status, `Retry-After` and body of a GET as `user`, read whole.
async fn get_as(server: &Server, user: &str, path: &str) -> (u16, Option<String>, Value) {
    answer(open_as(server, user, path).await).await
}

#[tokio::test]
async fn open_streams_are_capped_per_caller_and_per_process_and_freed_on_disconnect() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve(
        &scratch,
        &args(&[
            "--workers",
            "0",
            "--max-open-streams",
            "3",
            "--max-open-streams-per-caller",
            "2",
        ]),
    );
    let id = server.submit_id("noop", json!({})).await;
    let stream = format!("/api/v1/jobs/status/{id}/stream");
    let log_stream = format!("/api/v1/jobs/status/{id}/logs/stream");
    let poll_now = format!("/api/v1/jobs/status/{id}/poll?timeout=0");
    let long_poll = format!("/api/v1/jobs/status/{id}/poll?timeout=60");

    // Alice: a job stream and a log stream, her two.
    let alice = [
        open_as(&server, "alice", &stream).await,
        open_as(&server, "alice", &log_stream).await,
    ];
    assert!(alice.iter().all(|r| r.status() == 200));
    let refused = get_as(&server, "alice", &poll_now).await;
    assert!(
        refused.2["message"]
            .as_str()
            .unwrap_or_default()
            .contains("per caller"),
        "{}",
        refused.2
    );
    assert_eq!(assert_429(&refused, "TooManyStreamsError"), 5);

    // Bob: the dashboard's stream, the process's third.
    let bob = open_as(&server, "bob", "/api/v1/jobs/queue/stream").await;
    assert_eq!(bob.status(), 200);
    let refused = get_as(&server, "carol", &long_poll).await;
    assert_429(&refused, "TooManyStreamsError");
    assert!(
        refused.2["message"]
            .as_str()
            .unwrap_or_default()
            .contains("This server"),
        "{}",
        refused.2
    );

    // A closed stream gives its slot back; a long-poll holds one while it
    // waits, and gives it back when its client goes away.
    drop(bob);
    let spawn_carol = || {
        let request = server
            .http
            .get(server.at(&long_poll))
            .header("X-User-Id", "carol");
        tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
    };
    let mut carol = spawn_carol();
    wait_until(
        "carol's long-poll to hold the last slot",
        Duration::from_secs(10),
        || {
            // A probe may have held the slot as carol arrived: she asks again.
            if carol.is_finished() {
                carol = spawn_carol();
            }
            let probe = get_as(&server, "dave", &poll_now);
            async { (probe.await.0 == 429).then_some(()) }
        },
    )
    .await;
    carol.abort();
    wait_until(
        "the long-poll's slot to come back",
        Duration::from_secs(10),
        || async {
            let (status, _, _) = get_as(&server, "dave", &poll_now).await;
            (status == 200).then_some(())
        },
    )
    .await;

    drop(alice);
    wait_until(
        "alice's slots to come back",
        Duration::from_secs(10),
        || async {
            let (status, _, _) = get_as(&server, "alice", &poll_now).await;
            (status == 200).then_some(())
        },
    )
    .await;
    let mut held = Vec::new();
    for user in ["alice", "alice", "erin"] {
        let response = open_as(&server, user, &stream).await;
        assert_eq!(response.status(), 200, "{user}");
        held.push(response);
    }
    assert_429(
        &get_as(&server, "frank", &poll_now).await,
        "TooManyStreamsError",
    );
}

#[tokio::test]
async fn every_route_that_can_answer_429_documents_it_with_retry_after() {
    let app = crate::app::app().await;
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    for (method, path, errors) in [
        (
            "post",
            "/api/v1/jobs",
            &["QuotaExceededError", "RateLimitedError"][..],
        ),
        (
            "post",
            "/api/v1/jobs/pipeline",
            &["QuotaExceededError", "RateLimitedError"],
        ),
        (
            "post",
            "/api/v1/jobs/restart/{job_id}",
            &["QuotaExceededError"],
        ),
        (
            "get",
            "/api/v1/jobs/status/{job_id}/poll",
            &["TooManyStreamsError"],
        ),
        (
            "get",
            "/api/v1/jobs/status/{job_id}/stream",
            &["TooManyStreamsError"],
        ),
        (
            "get",
            "/api/v1/jobs/status/{job_id}/logs/stream",
            &["TooManyStreamsError"],
        ),
        ("get", "/api/v1/jobs/queue/stream", &["TooManyStreamsError"]),
    ] {
        let answer = &doc["paths"][path][method]["responses"]["429"];
        let description = answer["description"].as_str().unwrap_or_default();
        for error in errors {
            assert!(description.contains(error), "{method} {path}: {answer}");
        }
        assert!(
            answer["headers"]["Retry-After"].is_object(),
            "{method} {path}: {answer}"
        );
    }
}
