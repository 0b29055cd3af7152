//! The dashboard's live stream (`GET /api/v1/jobs/queue/stream`): one
//! producer per process however many dashboards are open; and a store
//! outage: logged once by the dashboards (not once per dashboard and
//! period), once per failed request with the request, and never shown to
//! clients.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::app::{App, Logs, sse_events};
use crate::support::{Scratch, Server, StoreKind, wait_until};

const STREAM: &str = "/api/v1/jobs/queue/stream";

/// The message of every `StoreUnavailableError`: the cause is for the log.
const STORE_UNAVAILABLE: &str = "The job store is unavailable; try again later";

/// Dashboards opened at once.
const DASHBOARDS: usize = 4;

/// Updates each dashboard waits for: the first, and one after a job change.
const UPDATES: usize = 2;

/// `jobd_dashboard_updates_total` of the server (0 before the first).
async fn updates_built(server: &Server) -> f64 {
    let text = server
        .http
        .get(server.at("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("jobd_dashboard_updates_total "))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Counts the `stats` events of a dashboard stream read over HTTP, until
/// the stream ends or the task is aborted.
async fn count_stats_events(response: reqwest::Response, seen: Arc<AtomicUsize>) {
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(Ok(chunk)) = bytes.next().await {
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8 event text"));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.lines().any(|l| l.trim() == "event: stats") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_dashboards_share_one_producer() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let before = updates_built(&server).await;
    let mut counts = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..DASHBOARDS {
        let response = server
            .http
            .get(server.at(STREAM))
            .send()
            .await
            .expect("open a dashboard stream");
        assert_eq!(response.status(), 200);
        let seen = Arc::new(AtomicUsize::new(0));
        readers.push(tokio::spawn(count_stats_events(response, seen.clone())));
        counts.push(seen);
    }
    let all_have = |n: usize| {
        let counts = &counts;
        move || async move {
            counts
                .iter()
                .all(|c| c.load(Ordering::SeqCst) >= n)
                .then_some(())
        }
    };
    wait_until(
        "a first update on every dashboard",
        Duration::from_secs(20),
        all_have(1),
    )
    .await;
    // A job change brings the next update within 300 ms rather than 2 s.
    server.submit_id("noop", json!({})).await;
    wait_until(
        "a second update on every dashboard",
        Duration::from_secs(20),
        all_have(UPDATES),
    )
    .await;
    let built = updates_built(&server).await - before;
    for reader in readers {
        reader.abort();
    }
    // Every update goes to every open dashboard: the dashboards received
    // UPDATES, the process may have built one more meanwhile.
    assert!(
        built <= (UPDATES + 1) as f64,
        "{DASHBOARDS} dashboards each received {UPDATES} updates, for which the process \
         read the store {built} times"
    );
}

/// Opens a dashboard stream in-process and records its events' names and
/// data as they arrive.
async fn watch_dashboard(app: &App) -> Arc<Mutex<Vec<(String, String)>>> {
    let request = Request::get(STREAM).body(Body::empty()).expect("request");
    let response = app.send(request).await;
    assert_eq!(response.status(), 200);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(sse_events(response.into_body()));
        while let Some(event) = events.next().await {
            sink.lock().expect("events").push(event);
        }
    });
    seen
}

/// How many events named `name` arrived after the last one named `after`
/// (after all of them when there is none).
fn count_since(events: &[(String, String)], name: &str, after: &str) -> usize {
    let start = events
        .iter()
        .rposition(|(n, _)| n == after)
        .map_or(0, |i| i + 1);
    events[start..].iter().filter(|(n, _)| n == name).count()
}

#[tokio::test]
async fn a_store_outage_is_logged_once_and_its_cause_never_shown() {
    let logs = Logs::capture();
    let Some(mut app) = App::on(StoreKind::Redis).await else {
        return;
    };
    // Stands in for job activity in this process, each change of which
    // brings the dashboards' next update within 300 ms instead of 2 s.
    let job = app.submit(json!({"job_type": "noop"})).await;
    let id = job["job_id"]
        .as_str()
        .expect("job_id")
        .parse()
        .expect("a UUID");
    let job = app.state.store.get(id).await.expect("the job");
    let bus = app.state.bus.clone();
    let activity = tokio::spawn(async move {
        loop {
            bus.publish(&job);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut dashboards = Vec::new();
    for _ in 0..3 {
        dashboards.push(watch_dashboard(&app).await);
    }
    let all_show = |name: &'static str, after: &'static str, n: usize| {
        let dashboards = &dashboards;
        move || async move {
            dashboards
                .iter()
                .all(|d| count_since(&d.lock().expect("events"), name, after) >= n)
                .then_some(())
        }
    };
    wait_until(
        "every dashboard to show the statistics",
        Duration::from_secs(20),
        all_show("stats", "-", 1),
    )
    .await;

    app.redis().kill9();
    // Requests during the outage (at once: each waits out the store's
    // reconnection attempts) get a 503 with a generic message; the cause is
    // logged once per request, on a line that names the request.
    let job_path = format!("/api/v1/jobs/status/{}", uuid::Uuid::now_v7());
    let paths = [job_path.as_str(), "/api/v1/jobs/queue/stats", "/health"];
    let answers = futures::future::join_all(paths.map(|path| app.get(path))).await;
    for (path, (status, error)) in paths.iter().zip(answers) {
        assert_eq!(status, 503, "{path}: {error}");
        assert_eq!(error["error"], "StoreUnavailableError", "{path}");
        assert_eq!(error["message"], STORE_UNAVAILABLE, "{path}");
        if *path == "/api/v1/jobs/queue/stats" {
            assert_eq!(error["worker_health_status"], "store_unavailable");
        }
        let logged = logs.matching(&[&format!("path=\"{path}\""), "redis"]);
        assert_eq!(
            logged.len(),
            1,
            "one log line names the request and the store's cause:\n{}",
            logs.lines().join("\n")
        );
    }

    wait_until(
        "every dashboard to show the outage in two updates",
        Duration::from_secs(30),
        all_show("stats_error", "stats", 2),
    )
    .await;
    // The dashboards' own lines: those of the dashboard feed that name no
    // request (the audit log's writer, say, logs its own retry).
    let dashboard_lines = |needle: &str| -> Vec<String> {
        logs.lines()
            .into_iter()
            .filter(|l| l.contains("jobd::api::live") && l.contains(needle) && !l.contains("path="))
            .collect()
    };
    let outage = dashboard_lines("store unavailable");
    assert_eq!(
        outage.len(),
        1,
        "one log line for the outage, not one per dashboard and update:\n{}",
        outage.join("\n")
    );
    for dashboard in &dashboards {
        let events = dashboard.lock().expect("events").clone();
        let (_, data) = events
            .iter()
            .rfind(|(n, _)| n == "stats_error")
            .expect("a stats_error event");
        let error: Value = serde_json::from_str(data).expect("JSON data");
        assert_eq!(error["error"], "StoreUnavailableError");
        assert_eq!(error["message"], STORE_UNAVAILABLE);
        assert_eq!(error["worker_health_status"], "store_unavailable");
    }

    app.redis().restart();
    wait_until(
        "every dashboard to show the statistics again",
        Duration::from_secs(30),
        all_show("stats", "stats_error", 1),
    )
    .await;
    assert_eq!(
        dashboard_lines("store available again").len(),
        1,
        "{}",
        logs.lines().join("\n")
    );
    assert_eq!(
        dashboard_lines("store unavailable").len(),
        1,
        "{}",
        logs.lines().join("\n")
    );
    activity.abort();
}
