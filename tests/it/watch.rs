//! Watching jobs: long-poll and Server-Sent Events.

use std::time::{Duration, Instant};

use jobd::cli::client::Client;
use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind};

/// Collects a job's SSE events (name, data) until the stream ends.
async fn collect_events(server: &Server, id: &str) -> Vec<(String, Value)> {
    let client = Client::new(&server.url);
    let mut events = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        client.follow(&format!("/api/v1/jobs/status/{id}/stream"), |name, data| {
            events.push((name.to_owned(), data.clone()));
            true
        }),
    )
    .await
    .expect("the stream ends")
    .expect("the stream is readable");
    events
}

async fn sse_sends_updates_in_order_and_ends_with_job_complete(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let id = server
        .submit_id("sleep", json!({"seconds": 0.6, "steps": 4}))
        .await;
    let events = collect_events(&server, &id).await;
    let (last_name, last) = events.last().expect("events");
    assert_eq!(last_name, "job_complete");
    assert_eq!(last["status"], "completed");
    assert_eq!(last["result"]["steps"], 4);
    let updates = &events[..events.len() - 1];
    assert!(!updates.is_empty(), "at least the initial job_update");
    let mut previous = -1.0;
    for (name, data) in updates {
        assert_eq!(name, "job_update");
        assert_eq!(data["job_id"], id.as_str());
        assert!(
            data["status"] == "pending" || data["status"] == "running",
            "{data}"
        );
        let progress = data["progress"].as_f64().unwrap();
        assert!(progress >= previous, "progress never goes backwards");
        previous = progress;
    }
    assert!(
        updates
            .iter()
            .any(|(_, d)| d["status"] == "running" && d["progress"].as_f64().unwrap() > 0.0),
        "progress updates were streamed: {updates:?}"
    );
}

async fn sse_of_a_finished_job_is_one_job_complete(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let failing = server
        .submit_id(
            "sleep",
            json!({"seconds": 0, "steps": 1, "fail_with": "bad input"}),
        )
        .await;
    server
        .wait_for_status(&failing, "failed", Duration::from_secs(10))
        .await;
    let events = collect_events(&server, &failing).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "job_complete");
    assert_eq!(events[0].1["status"], "failed");
    assert_eq!(events[0].1["error"], "bad input");
}

async fn sse_of_a_cancelled_job_ends_with_job_complete(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let id = server.submit_id("noop", json!({})).await;
    let watcher = {
        let url = server.url.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let client = Client::new(&url);
            let mut events = Vec::new();
            let _ = client
                .follow(&format!("/api/v1/jobs/status/{id}/stream"), |name, data| {
                    events.push((name.to_owned(), data.clone()));
                    true
                })
                .await;
            events
        })
    };
    crate::support::wait_until("the stream to be open", Duration::from_secs(5), || async {
        (server.stats().await["cache_size"] == 1).then_some(())
    })
    .await;
    server
        .post(&format!("/api/v1/jobs/cancel/{id}"), None)
        .await;
    let events = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events.first().unwrap().0, "job_update");
    assert_eq!(events.first().unwrap().1["status"], "pending");
    assert_eq!(events.last().unwrap().0, "job_complete");
    assert_eq!(events.last().unwrap().1["status"], "cancelled");
    crate::support::wait_until(
        "the stream's watch to be released",
        Duration::from_secs(5),
        || async { (server.stats().await["cache_size"] == 0).then_some(()) },
    )
    .await;
}

async fn poll_returns_at_once_when_the_status_differs(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let id = server.submit_id("noop", json!({})).await;
    let started = Instant::now();
    let (status, job) = server
        .get(&format!(
            "/api/v1/jobs/status/{id}/poll?current_status=running&timeout=10"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(job["status"], "pending");
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn poll_returns_early_on_a_change(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let id = server.submit_id("noop", json!({})).await;
    let poll = {
        let http = server.http.clone();
        let url = server.at(&format!("/api/v1/jobs/status/{id}/poll?timeout=60"));
        tokio::spawn(async move {
            let started = Instant::now();
            let job: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            (job, started.elapsed())
        })
    };
    crate::support::wait_until("the poll to wait", Duration::from_secs(5), || async {
        (server.stats().await["cache_size"] == 1).then_some(())
    })
    .await;
    server
        .post(&format!("/api/v1/jobs/cancel/{id}"), None)
        .await;
    let (job, waited) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job["status"], "cancelled");
    assert!(
        waited < Duration::from_secs(30),
        "returned on the change, not the timeout"
    );
}

async fn poll_times_out_with_the_job_as_it_is(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let id = server.submit_id("noop", json!({})).await;
    let started = Instant::now();
    let (status, job) = server
        .get(&format!(
            "/api/v1/jobs/status/{id}/poll?current_status=pending&timeout=0.5"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(job["status"], "pending");
    assert!(started.elapsed() >= Duration::from_millis(450));
    for bad in ["-1", "301", "soon", "NaN", ""] {
        let (status, error) = server
            .get(&format!("/api/v1/jobs/status/{id}/poll?timeout={bad}"))
            .await;
        assert_eq!(status, 400, "timeout={bad}");
        assert_eq!(error["error"], "ValidationError");
    }
    let (status, _) = server
        .get(&format!(
            "/api/v1/jobs/status/{id}/poll?current_status=bogus"
        ))
        .await;
    assert_eq!(status, 400);
}

/// A finished job cannot change but by a restart: a poll without
/// `current_status` answers at once instead of waiting out its timeout;
/// naming the status waits (for a restart).
#[tokio::test]
async fn poll_of_a_finished_job_answers_at_once() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("sqlite scratch");
    let server = Server::serve(&scratch, &[]);
    let id = server.submit_id("noop", json!({})).await;
    server
        .wait_for_status(&id, "completed", Duration::from_secs(10))
        .await;
    let started = Instant::now();
    let (status, job) = tokio::time::timeout(
        Duration::from_secs(10),
        server.get(&format!("/api/v1/jobs/status/{id}/poll?timeout=30")),
    )
    .await
    .expect("a poll of a finished job answers before its 30 s timeout");
    assert_eq!(status, 200);
    assert_eq!(job["status"], "completed");
    let (_, job) = server
        .get(&format!(
            "/api/v1/jobs/status/{id}/poll?current_status=completed&timeout=0.3"
        ))
        .await;
    assert_eq!(job["status"], "completed");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for a restart"
    );
}

/// SSE streams (a job's and the dashboard's) declare UTF-8, so clients
/// do not decode them as Latin-1.
#[tokio::test]
async fn event_streams_declare_utf8() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("sqlite scratch");
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let id = server.submit_id("noop", json!({})).await;
    for path in [
        format!("/api/v1/jobs/status/{id}/stream"),
        "/api/v1/jobs/queue/stream".to_owned(),
    ] {
        let response = server
            .http
            .get(server.at(&path))
            .send()
            .await
            .expect("the stream answers");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream; charset=utf-8",
            "{path}"
        );
    }
}

/// The first `job_update` and `job_complete` carry the whole job; a later
/// `job_update` only what changes (`job_id`, `status`, `progress`,
/// `metrics`, `error`), so big parameters are not resent per progress step.
async fn later_job_updates_carry_only_what_changes(kind: StoreKind) {
    use futures::StreamExt;
    use jobd::model::Progress;
    use jobd::store::{ClaimParams, Outcome};

    let Some(app) = crate::app::App::on(kind).await else {
        return;
    };
    let big = "p".repeat(1_000_000);
    let job = app
        .submit(json!({"job_type": "noop", "parameters": {"big": big}}))
        .await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    let response = app
        .send(
            axum::http::Request::get(format!("/api/v1/jobs/status/{id}/stream"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let mut events = Box::pin(crate::app::sse_events(response.into_body()));
    let mut next = async || {
        let (name, data) = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on");
        (
            name,
            data.len(),
            serde_json::from_str::<Value>(&data).unwrap(),
        )
    };
    let (name, _, first) = next().await;
    assert_eq!(name, "job_update");
    assert_eq!(
        first["parameters"]["big"].as_str().map(str::len),
        Some(1_000_000)
    );
    let store = &app.state.store;
    let claimed = store
        .claim(&ClaimParams {
            worker_id: "w".into(),
            serves: jobd::store::Serves::BuiltIn,
            max_jobs: 1,
            global_max: 10,
            per_user_max: 10,
            limits: Default::default(),
            lease: Duration::from_secs(60),
        })
        .await
        .unwrap();
    let claim = claimed[0].claim;
    let (name, bytes, running) = next().await;
    assert_eq!(name, "job_update");
    assert_eq!(running["status"], "running");
    assert!(bytes < 1000, "{bytes} bytes: {running}");
    store
        .report_progress(
            claim,
            Progress {
                fraction: 0.5,
                items_processed: Some(5),
                total_items: Some(10),
            },
        )
        .await
        .unwrap();
    let (name, bytes, update) = next().await;
    eprintln!("a progress job_update of a job with 1 MB parameters: {bytes} bytes of data");
    assert_eq!(name, "job_update");
    let keys: Vec<&str> = update
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["error", "job_id", "metrics", "progress", "status"],
        "{update}"
    );
    assert_eq!(update["job_id"], json!(id));
    assert_eq!(update["progress"], 0.5);
    assert_eq!(update["metrics"]["items_processed"], 5);
    assert_eq!(update["metrics"]["total_items"], 10);
    assert!(bytes < 1000, "{bytes} bytes: {update}");
    store
        .finish(
            claim,
            Outcome::Completed {
                result: json!({"ok": true}),
            },
        )
        .await
        .unwrap();
    let (name, _, complete) = next().await;
    assert_eq!(name, "job_complete");
    assert_eq!(complete["status"], "completed");
    assert_eq!(complete["result"], json!({"ok": true}));
    assert_eq!(
        complete["parameters"]["big"].as_str().map(str::len),
        Some(1_000_000)
    );
}

crate::for_each_store!(
    sse_sends_updates_in_order_and_ends_with_job_complete,
    sse_of_a_finished_job_is_one_job_complete,
    sse_of_a_cancelled_job_ends_with_job_complete,
    later_job_updates_carry_only_what_changes,
    poll_returns_at_once_when_the_status_differs,
    poll_returns_early_on_a_change,
    poll_times_out_with_the_job_as_it_is,
);
