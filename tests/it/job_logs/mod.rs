//! Per-job logs through the API, in-process on both stores: a page and a
//! follow, a remote worker's lines, the errors, and the log leaving with
//! its job. [`commands`] runs real `jobd` processes: an external command's
//! output, a follow across processes, retention.

mod commands;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures::StreamExt;
use jobd::config::JobTypeConfig;
use jobd::model::JobId;
use jobd::store::{ClaimParams, ClaimRef, LogLine, LogStream, Outcome, Serves};
use serde_json::{Value, json};

use crate::app::{App, sse_events};
use crate::support::StoreKind;

/// How long a test waits for an event.
const DEADLINE: Duration = Duration::from_secs(10);

fn claim_params(serves: Serves) -> ClaimParams {
    ClaimParams {
        worker_id: "test-worker".into(),
        serves,
        max_jobs: 1,
        global_max: 100,
        per_user_max: 100,
        limits: Default::default(),
        lease: Duration::from_secs(60),
    }
}

/// Submits a job of `job_type` and claims it as a worker serving `serves`.
async fn running_job(app: &App, job_type: &str, serves: Serves) -> ClaimRef {
    let job = app.submit(json!({"job_type": job_type})).await;
    let id: JobId = job["job_id"].as_str().unwrap().parse().unwrap();
    let claimed = app.state.store.claim(&claim_params(serves)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].claim.job_id, id);
    claimed[0].claim
}

async fn append(app: &App, claim: ClaimRef, texts: &[&str]) {
    let lines: Vec<LogLine> = texts
        .iter()
        .map(|t| LogLine::new(LogStream::Log, *t))
        .collect();
    app.state
        .store
        .append_log(claim, &lines, 1 << 20)
        .await
        .unwrap();
}

/// A log stream's events, as (name, data as JSON).
async fn follow(
    app: &App,
    path: String,
    last_event_id: Option<&'static str>,
) -> impl futures::Stream<Item = (String, Value)> + Unpin + use<> {
    let mut request = Request::get(path);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = app.send(request.body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    Box::pin(
        sse_events(response.into_body())
            .map(|(name, data)| (name, serde_json::from_str(&data).unwrap_or(Value::Null))),
    )
}

async fn next_event(
    events: &mut (impl futures::Stream<Item = (String, Value)> + Unpin),
) -> (String, Value) {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("an event in time")
        .expect("the stream went on")
}

async fn a_page_and_a_follow_read_the_log(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let claim = running_job(&app, "noop", Serves::BuiltIn).await;
    let id = claim.job_id;
    append(&app, claim, &["one", "two", "three"]).await;

    let (status, page) = app.get(&format!("/api/v1/jobs/status/{id}/logs")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["job_id"], id.to_string());
    assert_eq!(page["status"], "running");
    assert_eq!(page["next"], 3);
    let lines = page["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["line"], "one");
    assert_eq!(lines[0]["stream"], "log");
    assert_eq!(lines[0]["attempt"], 1);
    assert!(
        lines[0]["at"].as_str().unwrap().ends_with('Z'),
        "{}",
        lines[0]
    );

    let (_, page) = app
        .get(&format!("/api/v1/jobs/status/{id}/logs?after=1&limit=1"))
        .await;
    assert_eq!(page["lines"][0]["line"], "two");
    assert_eq!(page["next"], 2);
    let (_, page) = app
        .get(&format!("/api/v1/jobs/status/{id}/logs?after=3"))
        .await;
    assert_eq!(page["lines"], json!([]));
    assert_eq!(page["next"], 3);

    // A follow: the lines after `after`, then new ones as they come.
    let mut events = follow(
        &app,
        format!("/api/v1/jobs/status/{id}/logs/stream?after=1"),
        None,
    )
    .await;
    for expected in ["two", "three"] {
        let (name, data) = next_event(&mut events).await;
        assert_eq!(
            (name.as_str(), data["line"].as_str()),
            ("log", Some(expected))
        );
    }
    append(&app, claim, &["four"]).await;
    let (name, data) = next_event(&mut events).await;
    assert_eq!((name.as_str(), &data["seq"]), ("log", &json!(4)));
    app.state
        .store
        .finish(claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    let (name, data) = next_event(&mut events).await;
    assert_eq!(name, "end", "{data}");
    assert_eq!(
        data,
        json!({"job_id": id.to_string(), "status": "completed", "next": 4})
    );
    assert!(
        tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("the stream ends")
            .is_none()
    );

    // A reconnect resumes after its Last-Event-ID.
    let mut events = follow(
        &app,
        format!("/api/v1/jobs/status/{id}/logs/stream"),
        Some("3"),
    )
    .await;
    assert_eq!(next_event(&mut events).await.1["line"], "four");
    assert_eq!(next_event(&mut events).await.0, "end");
}

async fn a_remote_worker_appends_under_its_claim(kind: StoreKind) {
    let Some(app) = App::with(kind, |settings| {
        settings.job_types.insert(
            "gpu".into(),
            JobTypeConfig {
                remote: Some(true),
                ..JobTypeConfig::default()
            },
        );
    })
    .await
    else {
        return;
    };
    let claim = running_job(&app, "gpu", Serves::Remote(vec!["gpu".into()])).await;
    let id = claim.job_id;
    let body = |lines: Value| json!({"job_id": id.to_string(), "token": claim.token.to_string(), "lines": lines});
    let (status, answer) = app
        .post(
            "/api/v1/workers/logs",
            Some(body(json!([
                "loading model",
                "Traceback (most recent call last):"
            ]))),
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    let mut with_stream = body(json!(["from stderr"]));
    with_stream["stream"] = json!("stderr");
    assert_eq!(
        app.post("/api/v1/workers/logs", Some(with_stream)).await.0,
        204
    );
    let (_, page) = app.get(&format!("/api/v1/jobs/status/{id}/logs")).await;
    let seen: Vec<(&str, &str)> = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["stream"].as_str().unwrap(), l["line"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("log", "loading model"),
            ("log", "Traceback (most recent call last):"),
            ("stderr", "from stderr"),
        ]
    );

    // Bad input: 400, and nothing written.
    let too_many: Vec<String> = (0..1_001).map(|i| i.to_string()).collect();
    let mut unknown_stream = body(json!(["x"]));
    unknown_stream["stream"] = json!("syslog");
    let mut extra_field = body(json!(["x"]));
    extra_field["level"] = json!("info");
    for bad in [
        body(json!(too_many)),
        json!({"job_id": id.to_string(), "lines": ["no token"]}),
        body(json!("not a list")),
        body(json!([1, 2])),
        unknown_stream,
        extra_field,
        json!([]),
    ] {
        let (status, answer) = app.post("/api/v1/workers/logs", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} -> {answer}");
        assert_eq!(answer["error"], "ValidationError", "{answer}");
    }
    assert_eq!(app.post("/api/v1/workers/logs", None).await.0, 400);

    // A claim that no longer holds: 409, nothing written.
    let forged = json!({"job_id": id.to_string(), "token": uuid::Uuid::new_v4().to_string(), "lines": ["forged"]});
    let (status, answer) = app.post("/api/v1/workers/logs", Some(forged)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("ClaimLostError"))
    );
    app.post(&format!("/api/v1/jobs/cancel/{id}"), None).await;
    let (status, answer) = app
        .post("/api/v1/workers/logs", Some(body(json!(["late"]))))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("ClaimLostError"))
    );
    let (_, page) = app.get(&format!("/api/v1/jobs/status/{id}/logs")).await;
    assert_eq!(page["lines"].as_array().unwrap().len(), 3);
    assert_eq!(page["status"], "cancelled");
}

async fn the_log_goes_with_its_job(kind: StoreKind) {
    let Some(mut app) = App::on(kind).await else {
        return;
    };
    // Retention cleanup deletes a finished job's log.
    let claim = running_job(&app, "noop", Serves::BuiltIn).await;
    append(&app, claim, &["done soon"]).await;
    app.state
        .store
        .finish(claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    let path = format!("/api/v1/jobs/status/{}/logs", claim.job_id);
    assert_eq!(app.get(&path).await.0, 200);
    let report = app
        .state
        .store
        .cleanup(&jobd::store::CleanupParams {
            completed_retention: Duration::ZERO,
            failed_retention: Duration::ZERO,
            audit_retention: std::time::Duration::MAX,
        })
        .await
        .unwrap();
    assert_eq!(report.jobs_deleted, 1);
    let (status, body) = app.get(&path).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("JobNotFoundError"))
    );

    // A follow of a job that leaves the store unannounced ends with an
    // `error` event instead of hanging.
    let claim = running_job(&app, "noop", Serves::BuiltIn).await;
    append(&app, claim, &["still here"]).await;
    let id = claim.job_id;
    let mut events = follow(&app, format!("/api/v1/jobs/status/{id}/logs/stream"), None).await;
    assert_eq!(next_event(&mut events).await.1["line"], "still here");
    match kind {
        StoreKind::Redis => {
            let (mut conn, prefix) = app.raw_redis().await;
            let _: () = ::redis::cmd("DEL")
                .arg(format!("{{{prefix}}}:job:{id}"))
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        StoreKind::Sqlite => {
            let file = app.state.settings.data_dir.join("jobd.sqlite3");
            let conn = rusqlite::Connection::open(file).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            conn.execute("DELETE FROM jobs WHERE id = ?1", [id.to_string()])
                .unwrap();
            let left: i64 = conn
                .query_row(
                    "SELECT count(*) FROM job_log_lines WHERE job_id = ?1",
                    [id.to_string()],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(left, 0, "the log goes with any delete of its job");
        }
    }
    let (name, data) = next_event(&mut events).await;
    assert_eq!(
        (name.as_str(), data["error"].as_str()),
        ("error", Some("JobNotFoundError"))
    );
    assert!(
        tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("the stream ends")
            .is_none()
    );
}

crate::for_each_store!(
    a_page_and_a_follow_read_the_log,
    a_remote_worker_appends_under_its_claim,
    the_log_goes_with_its_job,
);

#[tokio::test]
async fn bad_requests_are_refused_in_the_error_shape() {
    let app = crate::app::app().await;
    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/api/v1/jobs/status/{unknown}/logs"),
        format!("/api/v1/jobs/status/{unknown}/logs/stream"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("JobNotFoundError")),
            "{path}"
        );
    }
    for path in [
        "/api/v1/jobs/status/not-a-uuid/logs",
        "/api/v1/jobs/status/not-a-uuid/logs/stream",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("InvalidJobIdError")),
            "{path}"
        );
    }
    let id = app.submit(json!({"job_type": "noop"})).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for query in [
        "after=-1",
        "after=",
        "after=abc",
        "after=9007199254740992",
        "limit=0",
        "limit=1001",
        "limit=",
        "level=info",
    ] {
        let (status, body) = app
            .get(&format!("/api/v1/jobs/status/{id}/logs?{query}"))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("ValidationError")),
            "{query}: {body}"
        );
    }
    let (status, body) = app
        .get(&format!("/api/v1/jobs/status/{id}/logs/stream?limit=5"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("ValidationError")),
        "{body}"
    );
    let request = Request::get(format!("/api/v1/jobs/status/{id}/logs/stream"))
        .header("Last-Event-ID", "yesterday")
        .body(Body::empty())
        .unwrap();
    let response = app.send(request).await;
    assert_eq!(response.status(), 400);
    // A bad `after` is refused even beside a good Last-Event-ID.
    let request = Request::get(format!("/api/v1/jobs/status/{id}/logs/stream?after=-1"))
        .header("Last-Event-ID", "0")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(request).await.status(), 400);
    // A pending job's log: empty, and its status says why.
    let (status, page) = app.get(&format!("/api/v1/jobs/status/{id}/logs")).await;
    assert_eq!(status, 200);
    assert_eq!(
        page,
        json!({"job_id": id, "status": "pending", "lines": [], "next": 0})
    );
}
