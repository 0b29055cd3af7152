//! Debounced submissions over HTTP: a burst of 10,000 submissions with one
//! debounce key, from concurrent clients (on Redis spread over two API
//! nodes), makes exactly one job, which runs once and starts no later
//! than `max_wait_seconds` after the first submission; steady
//! submissions that never pause for a period start the job at
//! `max_wait_seconds`; the CLI's options; and the body's
//! `debounce` object is checked (400s) on both stores.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::app::App;
use crate::support::{Scratch, Server, StoreKind};

/// Submissions in the burst.
const BURST: usize = 10_000;

/// Requests in flight at once.
const CLIENTS: usize = 64;

/// The debounce: the job starts a period after the last submission, and
/// the burst (tens of seconds on a loaded debug build) must end within the
/// longest wait. The cap itself is the contract suite's to pin down.
const MAX_WAIT_SECONDS: f64 = 90.0;
const PERIOD_SECONDS: f64 = 2.0;

/// How late after its due time the job may start: the scheduler's and a
/// worker's reaction, on a loaded test machine.
const START_SLACK_MS: i64 = 1_500;

fn millis(time: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

async fn a_burst_of_ten_thousand_submissions_runs_once_within_max_wait(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let nodes = match kind {
        StoreKind::Sqlite => vec![Server::serve(&scratch, &[])],
        StoreKind::Redis => vec![
            Server::serve(&scratch, &[]),
            Server::serve(&scratch, &["--workers".into(), "0".into()]),
        ],
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let debounce = json!({
        "key": "reindex",
        "period_seconds": PERIOD_SECONDS,
        "max_wait_seconds": MAX_WAIT_SECONDS,
    });
    let began = chrono::Utc::now().timestamp_millis();
    let clock = Instant::now();
    let answers: Vec<(u16, Option<String>, String)> = futures::stream::iter(0..BURST)
        .map(|i| {
            let body = json!({
                "job_type": "noop",
                "parameters": {"n": i},
                "user_id": "alice",
                "debounce": debounce,
            });
            let request = client
                .post(nodes[i % nodes.len()].at("/api/v1/jobs"))
                .json(&body);
            async move {
                let response = request.send().await.expect("submit");
                let status = response.status().as_u16();
                let debounced = response
                    .headers()
                    .get("debounced")
                    .map(|v| v.to_str().unwrap_or_default().to_owned());
                let job: Value = response.json().await.expect("JSON");
                let id = job["job_id"].as_str().unwrap_or_default().to_owned();
                (status, debounced, id)
            }
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let burst = clock.elapsed();
    assert!(
        burst < Duration::from_secs_f64(MAX_WAIT_SECONDS),
        "the burst took {burst:?}, longer than the longest wait: the test needs it shorter"
    );
    let created: Vec<_> = answers.iter().filter(|a| a.0 == 201).collect();
    let collapsed = answers
        .iter()
        .filter(|a| a.0 == 200 && a.1.as_deref() == Some("true"))
        .count();
    assert_eq!(
        (created.len(), collapsed),
        (1, BURST - 1),
        "one stored, the rest collapsed: {:?}",
        answers.iter().find(|a| a.0 != 200)
    );
    let id = created[0].2.clone();
    assert!(
        answers.iter().all(|a| a.2 == id),
        "every answer is the one job"
    );

    let job = nodes[0]
        .wait_for_status(
            &id,
            "completed",
            Duration::from_secs_f64(MAX_WAIT_SECONDS + 30.0),
        )
        .await;
    assert_eq!(job["attempts"], 1, "it ran once: {job}");
    let n = job["parameters"]["n"]
        .as_u64()
        .expect("a submission's input");
    assert!((n as usize) < BURST);
    let first = millis(&job["created_at"]);
    let started = millis(&job["started_at"]);
    let max_wait = (MAX_WAIT_SECONDS * 1000.0) as i64;
    assert!(
        first >= began - 1_000,
        "created at the first submission: {job}"
    );
    let last = began + burst.as_millis() as i64;
    assert!(
        started >= last.min(first + max_wait) - 1_000,
        "a period after the last submission ({} ms after the first): {job}",
        started - first
    );
    assert!(
        started <= first + max_wait + START_SLACK_MS,
        "started {} ms after the first submission, max_wait is {max_wait} ms: {job}",
        started - first
    );
    // One job in all, on every node.
    for node in &nodes {
        let (_, listed) = node.get("/api/v1/jobs?limit=10").await;
        assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{listed}");
    }
}

async fn bad_debounce_objects_are_refused(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let good = json!({"key": "k", "period_seconds": 1});
    let cases = [
        json!({"job_type": "noop", "debounce": {"key": "", "period_seconds": 1}}),
        json!({"job_type": "noop", "debounce": {"key": "a b", "period_seconds": 1}}),
        json!({"job_type": "noop", "debounce": {"key": "k", "period_seconds": 0}}),
        json!({"job_type": "noop", "debounce": {"key": "k", "period_seconds": 1, "max_wait_seconds": -1}}),
        json!({"job_type": "noop", "debounce": {"key": "k"}}),
        json!({"job_type": "noop", "debounce": {"key": "k", "period_seconds": 1, "other": 1}}),
        json!({"job_type": "noop", "debounce": good, "delay_seconds": 5}),
        json!({"job_type": "noop", "debounce": good, "idempotency_key": "i"}),
        json!({"job_type": "nope", "debounce": good}),
    ];
    for body in cases {
        let (status, error) = app.post("/api/v1/jobs", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} -> {error}");
        assert!(error["error"].is_string(), "{error}");
    }
    // In a batch: 400 too.
    let batch = json!({"jobs": [{"job_type": "noop", "debounce": good}]});
    let (status, error) = app.post("/api/v1/jobs/batch", Some(batch)).await;
    assert_eq!(status, 400, "{error}");

    // A good one: 201, then 200 with `Debounced: true` and the same job.
    let body = json!({"job_type": "noop", "parameters": {"n": 1}, "debounce": good});
    let (status, first) = app.post("/api/v1/jobs", Some(body)).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (201, Some("scheduled")),
        "{first}"
    );
    let body = json!({"job_type": "noop", "parameters": {"n": 2}, "debounce": good});
    let (status, again) = app.post("/api/v1/jobs", Some(body)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["job_id"], first["job_id"]);
    assert_eq!(again["parameters"], json!({"n": 2}));
}

/// Submissions that never pause for a period: the cap starts the job
/// `max_wait_seconds` after the first, and later ones make the next job.
async fn steady_submissions_start_the_job_at_max_wait(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let debounce = json!({"key": "steady", "period_seconds": 1, "max_wait_seconds": 2});
    let mut ids = Vec::new();
    let clock = Instant::now();
    // Pacing, not waiting: a submission every 200 ms, less than the period.
    let mut pace = tokio::time::interval(Duration::from_millis(200));
    while clock.elapsed() < Duration::from_secs(4) {
        pace.tick().await;
        let (status, job) = server
            .post(
                "/api/v1/jobs",
                Some(json!({"job_type": "noop", "debounce": debounce})),
            )
            .await;
        assert!(status == 200 || status == 201, "{status} {job}");
        let id = job["job_id"].as_str().unwrap().to_owned();
        if ids.last() != Some(&id) {
            ids.push(id);
        }
    }
    assert!(
        ids.len() >= 2,
        "the cap ended the first job's wait: {ids:?}"
    );
    let job = server
        .wait_for_status(&ids[0], "completed", Duration::from_secs(20))
        .await;
    let waited = millis(&job["started_at"]) - millis(&job["created_at"]);
    assert!(
        (2_000..=2_000 + START_SLACK_MS).contains(&waited),
        "started {waited} ms after the first submission: {job}"
    );
}

crate::for_each_store!(
    a_burst_of_ten_thousand_submissions_runs_once_within_max_wait,
    bad_debounce_objects_are_refused,
    steady_submissions_start_the_job_at_max_wait
);

/// `jobd submit --debounce-key ... --expires-in ...`: the second run
/// prints the first run's job, now with its parameters.
#[tokio::test]
async fn the_cli_submits_debounced_and_expiring_jobs() {
    let Some(scratch) = Scratch::new(StoreKind::Sqlite) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let run = |n: &'static str| {
        let url = server.url.clone();
        async move {
            let args = [
                "submit",
                "noop",
                "--param",
                n,
                "--debounce-key",
                "k",
                "--debounce-period",
                "60",
                "--expires-in",
                "600",
            ];
            let (code, out, err) =
                tokio::task::spawn_blocking(move || crate::support::cli(&url, &args))
                    .await
                    .unwrap();
            assert_eq!(code, 0, "{out} {err}");
            serde_json::from_str::<Value>(&out).expect("the job as JSON")
        }
    };
    let first = run("n=1").await;
    let second = run("n=2").await;
    assert_eq!(first["job_id"], second["job_id"]);
    assert_eq!(second["parameters"], json!({"n": 2}));
    assert!(second["expires_at"].is_string(), "{second}");
}
