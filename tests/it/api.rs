//! The HTTP API: error shapes, validation, submission and listing
//! in-process on the real router (once, or once per store when the store
//! matters); runs, retries, time-outs, stats and streams against a real
//! `jobd` process on each store.

use std::time::Duration;

use serde_json::{Value, json};

use axum::body::Body;
use axum::http::Request;

use crate::app::{App, app, body_bytes};
use crate::support::{Scratch, Server, StoreKind, wait_until};

const SEED_FIELDS: [&str; 10] = [
    "job_id",
    "job_type",
    "status",
    "progress",
    "created_at",
    "started_at",
    "completed_at",
    "error",
    "user_id",
    "metrics",
];

fn assert_utc(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    assert!(text.ends_with('Z'), "timestamp {text} is not UTC with Z");
    assert!(
        chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "{text} is not RFC 3339"
    );
}

/// `POST /api/v1/jobs` of a raw body, in-process.
async fn submit_raw(app: &App, body: &'static str) -> (u16, Value) {
    let request = Request::post("/api/v1/jobs")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = app.send(request).await;
    let status = response.status().as_u16();
    let bytes = body_bytes(response).await;
    (
        status,
        serde_json::from_slice(&bytes).expect("a JSON error"),
    )
}

#[tokio::test]
async fn bad_requests_get_the_error_shape_and_status() {
    let app = App::with(StoreKind::Sqlite, |s| s.max_body_bytes = 2048)
        .await
        .expect("SQLite app");
    let cases: Vec<(&str, u16, &str)> = vec![
        ("{not json", 400, "ValidationError"),
        ("", 400, "ValidationError"),
        ("[]", 400, "ValidationError"),
        (r#"{"parameters": {}}"#, 400, "ValidationError"),
        (r#"{"job_type": "nope"}"#, 400, "UnknownJobTypeError"),
        (
            r#"{"job_type": "noop", "parameters": [1]}"#,
            400,
            "ValidationError",
        ),
        (
            r#"{"job_type": "noop", "bogus": 1}"#,
            400,
            "ValidationError",
        ),
        (
            r#"{"job_type": "noop", "run_at": "tomorrow"}"#,
            400,
            "ValidationError",
        ),
        (
            r#"{"job_type": "noop", "delay_seconds": -1}"#,
            400,
            "ValidationError",
        ),
        (
            r#"{"job_type": "noop", "delay_seconds": 1, "run_at": "2030-01-01T00:00:00Z"}"#,
            400,
            "ValidationError",
        ),
        (
            r#"{"job_type": "noop", "max_attempts": 0}"#,
            400,
            "ValidationError",
        ),
        (
            r#"{"job_type": "noop", "timeout_seconds": 0}"#,
            400,
            "ValidationError",
        ),
        (
            r#"{"job_type": "noop", "priority": 99999999999}"#,
            400,
            "ValidationError",
        ),
        (
            r#"{"job_type": "noop", "user_id": ""}"#,
            400,
            "ValidationError",
        ),
    ];
    for (body, status, name) in cases {
        let (got, error) = submit_raw(&app, body).await;
        assert_eq!(got, status, "status for {body}: {error}");
        assert_eq!(error["error"], name, "error for {body}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, unknown) = submit_raw(&app, r#"{"job_type": "nope"}"#).await;
    assert!(
        unknown["message"].as_str().unwrap().contains("noop"),
        "the message lists the known types: {unknown}"
    );

    let big = format!(
        r#"{{"job_type": "noop", "parameters": {{"x": "{}"}}}}"#,
        "a".repeat(4096)
    );
    let (status, error) = app.call("POST", "/api/v1/jobs", big).await;
    assert_eq!(status, 413);
    assert_eq!(error["error"], "PayloadTooLargeError");

    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/api/v1/jobs/status/{missing}"),
        format!("/api/v1/jobs/status/{missing}/poll?timeout=0"),
        format!("/api/v1/jobs/status/{missing}/stream"),
        format!("/api/v1/jobs/status/{missing}/why"),
    ] {
        let (status, error) = app.get(&path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(error["error"], "JobNotFoundError");
        assert_eq!(error["job_id"], missing.to_string());
        assert_eq!(error["message"], format!("Job {missing} not found"));
    }
    for path in ["cancel", "restart"] {
        let (status, error) = app
            .post(&format!("/api/v1/jobs/{path}/{missing}"), None)
            .await;
        assert_eq!(status, 404);
        assert_eq!(error["error"], "JobNotFoundError");
        let (status, error) = app
            .post(&format!("/api/v1/jobs/{path}/not-a-uuid"), None)
            .await;
        assert_eq!(status, 400);
        assert_eq!(error["error"], "InvalidJobIdError");
    }
    for (path, status, name) in [
        ("/api/v1/jobs/status/123", 400, "InvalidJobIdError"),
        ("/api/v1/jobs?status=done", 400, "ValidationError"),
        ("/api/v1/jobs?limit=0", 400, "ValidationError"),
        ("/api/v1/jobs?limit=x", 400, "ValidationError"),
        ("/api/v1/jobs?cursor=zz", 400, "ValidationError"),
        ("/api/v1/jobs?bogus=1", 400, "ValidationError"),
        ("/no/such/route", 404, "NotFoundError"),
    ] {
        let (got, error) = app.get(path).await;
        assert_eq!(
            (got, error["error"].as_str()),
            (status, Some(name)),
            "{path}"
        );
    }
    let (status, error) = app
        .call("DELETE", "/api/v1/jobs/queue/stats", Body::empty())
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (405, Some("MethodNotAllowedError"))
    );
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200, "the app still answers after all of that");
}

#[tokio::test]
async fn cancel_and_restart_conflicts_name_the_status() {
    let app = app().await;
    let job = app.submit(json!({"job_type": "noop"})).await;
    let id = job["job_id"].as_str().unwrap();
    let (status, error) = app.post(&format!("/api/v1/jobs/restart/{id}"), None).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"], "JobNotRestartableError");
    assert_eq!(error["current_status"], "pending");
    let (status, _) = app.post(&format!("/api/v1/jobs/cancel/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, error) = app.post(&format!("/api/v1/jobs/cancel/{id}"), None).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"], "JobAlreadyCompletedError");
    assert_eq!(error["current_status"], "cancelled");
    assert_eq!(error["job_id"], id);
    assert_eq!(
        error["message"],
        "Cannot cancel job that is already cancelled"
    );
}

#[tokio::test]
async fn no_malformed_request_gets_a_server_error() {
    let app = app().await;
    let job = app.submit(json!({"job_type": "noop"})).await;
    let id = job["job_id"].as_str().unwrap();
    let paths = [
        "/api/v1/jobs".to_string(),
        format!("/api/v1/jobs/status/{id}"),
        format!("/api/v1/jobs/status/{id}/poll?timeout=0"),
        format!("/api/v1/jobs/cancel/{id}"),
        format!("/api/v1/jobs/restart/{id}"),
        "/api/v1/jobs/pipeline".into(),
        "/api/v1/jobs/queue/stats".into(),
        "/api/v1/jobs/status/%00%ff".into(),
        "/api/v1/jobs/status/..%2F..%2Fetc".into(),
        "/api/v1/jobs?limit=-1&cursor=%ZZ".into(),
        "/api/v1/jobs?status[]=x".into(),
    ];
    let bodies: [&[u8]; 8] = [
        b"",
        b"null",
        b"\xff\xfe\x00",
        b"{\"job_type\": null}",
        b"{\"job_type\": \"noop\", \"parameters\": {\"a\": 1e999}}",
        b"{\"job_type\": \"noop\", \"priority\": \"high\"}",
        b"{\"job_type\": \"noop\", \"run_at\": \"9999-99-99T99:99:99\"}",
        b"{\"parameters\": {}} trailing",
    ];
    for path in &paths {
        for method in ["GET", "POST", "PUT"] {
            for body in bodies {
                let (status, error) = app.call(method, path, body.to_vec()).await;
                assert!(status < 500, "{method} {path} {body:?} -> {status}");
                if status >= 400 {
                    assert!(
                        error["error"]
                            .as_str()
                            .is_some_and(|e| e.ends_with("Error")),
                        "{method} {path}: {error}"
                    );
                }
            }
        }
    }
}

async fn submit_answers_201_with_the_job_and_its_location(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let request = Request::post("/api/v1/jobs")
        .header("X-User-Id", "alice")
        .body(Body::from(
            json!({"job_type": "noop", "parameters": {"n": 1}, "priority": 5}).to_string(),
        ))
        .expect("request");
    let response = app.send(request).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
    let id = job["job_id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/jobs/status/{id}"));
    assert_eq!(job["status"], "pending");
    assert_eq!(job["user_id"], "alice", "X-User-Id is the user");
    assert_eq!(job["priority"], 5);
    assert_eq!(job["parameters"], json!({"n": 1}));
    assert_eq!(job["progress"], 0.0);
    for field in SEED_FIELDS {
        assert!(job.get(field).is_some(), "field {field} missing from {job}");
    }
    for field in ["execution_time_seconds", "items_processed", "total_items"] {
        assert!(
            job["metrics"].get(field).is_some(),
            "metrics.{field} missing"
        );
    }
    assert_utc(&job["created_at"]);
    assert!(uuid::Uuid::parse_str(id).is_ok());

    let (status, same) = app.get(&location).await;
    assert_eq!(status, 200);
    assert_eq!(same["job_id"], job["job_id"]);

    let body_user = app
        .submit(json!({"job_type": "noop", "user_id": "bob"}))
        .await;
    assert_eq!(body_user["user_id"], "bob");
    let default_user = app.submit(json!({"job_type": "noop"})).await;
    assert_eq!(default_user["user_id"], "default_user");
    assert_eq!(default_user["parameters"], json!({}));
}

async fn listing_filters_and_pages_newest_first(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..7 {
        let user = if i % 2 == 0 { "even" } else { "odd" };
        let job = app
            .submit(json!({"job_type": "noop", "user_id": user}))
            .await;
        ids.push(job["job_id"].as_str().unwrap().to_owned());
    }
    app.submit(json!({"job_type": "sleep", "user_id": "odd"}))
        .await;
    let ids_of = |page: &Value| -> Vec<String> {
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = app.get("/api/v1/jobs?user_id=even&limit=3").await;
    assert_eq!(
        ids_of(&page),
        vec![ids[6].clone(), ids[4].clone(), ids[2].clone()]
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = app
        .get(&format!(
            "/api/v1/jobs?user_id=even&limit=3&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids_of(&page), vec![ids[0].clone()]);
    assert_eq!(page["next_cursor"], Value::Null);
    let (_, page) = app.get("/api/v1/jobs?job_type=sleep").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    let (_, page) = app.get("/api/v1/jobs?status=pending&user_id=odd").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 4);
    let (_, page) = app.get("/api/v1/jobs?status=completed").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 0);
}

/// A listing returns summaries: no `parameters` or `result` unless
/// `include` names them; an unknown name is a 400.
async fn listings_return_summaries_unless_asked_for_more(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let big = "p".repeat(100_000);
    let job = app
        .submit(json!({"job_type": "noop", "parameters": {"big": big}}))
        .await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    // A result to leave out: the store finishes the job as a worker would.
    let claimed = app
        .state
        .store
        .claim(&jobd::store::ClaimParams {
            worker_id: "w".into(),
            serves: jobd::store::Serves::BuiltIn,
            max_jobs: 1,
            global_max: 10,
            per_user_max: 10,
            limits: Default::default(),
            lease: std::time::Duration::from_secs(60),
        })
        .await
        .unwrap();
    app.state
        .store
        .finish(
            claimed[0].claim,
            jobd::store::Outcome::Completed {
                result: json!({"out": "r".repeat(100_000)}),
            },
        )
        .await
        .unwrap();
    let listed = |page: &Value| page["jobs"][0].clone();
    let (status, page) = app.get("/api/v1/jobs").await;
    assert_eq!(status, 200, "{page}");
    let summary = listed(&page);
    assert_eq!(summary["job_id"], json!(id));
    assert_eq!(summary["status"], "completed");
    assert!(summary.get("parameters").is_none(), "{summary}");
    assert!(summary.get("result").is_none(), "{summary}");
    for field in SEED_FIELDS {
        assert!(summary.get(field).is_some(), "field {field} missing");
    }
    assert!(page.to_string().len() < 10_000, "a summary page is small");
    let (_, page) = app.get("/api/v1/jobs?include=parameters").await;
    assert_eq!(listed(&page)["parameters"]["big"], json!(big));
    assert!(listed(&page).get("result").is_none());
    let (_, page) = app.get("/api/v1/jobs?include=result").await;
    assert!(listed(&page).get("parameters").is_none());
    assert_eq!(
        listed(&page)["result"]["out"].as_str().map(str::len),
        Some(100_000)
    );
    let (status, whole) = app.get(&format!("/api/v1/jobs/status/{id}")).await;
    assert_eq!(status, 200);
    for include in [
        "parameters,result",
        "result,parameters",
        "result,%20parameters",
    ] {
        let (status, page) = app.get(&format!("/api/v1/jobs?include={include}")).await;
        assert_eq!(status, 200, "{include}: {page}");
        let mut listed = listed(&page);
        let mut whole = whole.clone();
        // Run time is measured at the answer; the rest is the same job.
        listed["metrics"].take();
        whole["metrics"].take();
        assert_eq!(listed, whole, "include={include}");
    }
    for bad in ["params", "parameters,bogus", "PARAMETERS"] {
        let (status, error) = app.get(&format!("/api/v1/jobs?include={bad}")).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (400, Some("ValidationError")),
            "include={bad}: {error}"
        );
    }
}

/// A listing page that includes big fields stops before 16 MiB of jobs
/// and gives the cursor where it stopped; the next page goes on from there.
async fn a_listing_with_big_fields_stays_within_its_byte_budget(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let big = "p".repeat(1_000_000);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let job = app
            .submit(json!({"job_type": "noop", "parameters": {"big": big}}))
            .await;
        ids.push(job["job_id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = "/api/v1/jobs?include=parameters&limit=100".to_owned();
    let mut pages = 0;
    loop {
        let response = app
            .send(Request::get(&path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(response.status(), 200);
        let bytes = body_bytes(response).await;
        assert!(bytes.len() <= 16 << 20, "{} bytes", bytes.len());
        let page: Value = serde_json::from_slice(&bytes).unwrap();
        let jobs = page["jobs"].as_array().unwrap();
        assert!(!jobs.is_empty());
        for job in jobs {
            assert_eq!(
                job["parameters"]["big"].as_str().map(str::len),
                Some(1_000_000)
            );
            seen.push(job["job_id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(Some(cursor), seen.last().map(String::as_str));
                path = format!("/api/v1/jobs?include=parameters&limit=100&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "every job once, newest first");
    assert_eq!(pages, 2, "16 jobs of 1 MB fit in the first page");
}

async fn a_job_runs_to_completed_with_result_progress_and_timings(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let id = server
        .submit_id("sleep", json!({"seconds": 0.3, "steps": 3}))
        .await;
    let job = server
        .wait_for_status(&id, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["result"], json!({"slept_seconds": 0.3, "steps": 3}));
    assert_eq!(job["metrics"]["items_processed"], 3);
    assert_eq!(job["metrics"]["total_items"], 3);
    assert!(job["metrics"]["execution_time_seconds"].as_f64().unwrap() >= 0.3);
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["error"], Value::Null);
    assert_utc(&job["started_at"]);
    assert_utc(&job["completed_at"]);
}

async fn execution_time_grows_while_a_job_runs(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let id = server
        .submit_id("sleep", json!({"seconds": 5, "steps": 1}))
        .await;
    let first = server
        .wait_for_status(&id, "running", Duration::from_secs(5))
        .await;
    let t0 = first["metrics"]["execution_time_seconds"].as_f64().unwrap();
    wait_until("execution time to grow", Duration::from_secs(5), || async {
        let job = server.job(&id).await;
        (job["metrics"]["execution_time_seconds"].as_f64().unwrap() > t0 + 0.2).then_some(())
    })
    .await;
    server
        .post(&format!("/api/v1/jobs/cancel/{id}"), None)
        .await;
}

async fn delayed_jobs_are_scheduled_then_run(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let job = server
        .submit(json!({"job_type": "noop", "delay_seconds": 1}))
        .await;
    assert_eq!(job["status"], "scheduled");
    assert_utc(&job["scheduled_for"]);
    let id = job["job_id"].as_str().unwrap();
    server
        .wait_for_status(id, "completed", Duration::from_secs(10))
        .await;

    // A timestamp without an offset is UTC: one in the past runs at once,
    // one far ahead stays scheduled.
    let past = server
        .submit(json!({"job_type": "noop", "run_at": "2020-01-01T00:00:00"}))
        .await;
    assert_eq!(past["status"], "pending");
    let ahead = chrono::Utc::now().naive_utc() + chrono::Duration::days(30);
    let future = server
        .submit(
            json!({"job_type": "noop", "run_at": ahead.format("%Y-%m-%dT%H:%M:%S").to_string()}),
        )
        .await;
    assert_eq!(future["status"], "scheduled", "{future}");
    assert_eq!(
        future["scheduled_for"],
        format!("{}.000Z", ahead.format("%Y-%m-%dT%H:%M:%S")),
        "a timestamp without offset is UTC"
    );
    let with_offset = server
        .submit(json!({"job_type": "noop", "run_at": format!("{}+02:00", ahead.format("%Y-%m-%dT%H:%M:%S"))}))
        .await;
    let expected = ahead - chrono::Duration::hours(2);
    assert_eq!(
        with_offset["scheduled_for"],
        format!("{}.000Z", expected.format("%Y-%m-%dT%H:%M:%S"))
    );
}

async fn failures_retry_with_backoff_then_fail_and_timeouts_fail(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--retry-backoff-seconds".into(), "0.2".into()]);
    let job = server
        .submit(json!({
            "job_type": "sleep",
            "parameters": {"seconds": 0.05, "steps": 1, "fail_with": "boom"},
            "max_attempts": 2
        }))
        .await;
    let id = job["job_id"].as_str().unwrap();
    let failed = server
        .wait_for_status(id, "failed", Duration::from_secs(10))
        .await;
    assert_eq!(failed["attempts"], 2, "{failed}");
    assert_eq!(failed["error"], "boom");
    assert_utc(&failed["completed_at"]);

    let job = server
        .submit(json!({"job_type": "sleep", "parameters": {"seconds": 30}, "timeout_seconds": 0.3}))
        .await;
    let id = job["job_id"].as_str().unwrap();
    let failed = server
        .wait_for_status(id, "failed", Duration::from_secs(10))
        .await;
    assert!(
        failed["error"].as_str().unwrap().contains("timed out"),
        "{failed}"
    );
}

async fn stats_count_every_status_and_report_the_process(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(
        &scratch,
        &[
            "--global-max-concurrent-jobs".into(),
            "4".into(),
            "--per-user-max-concurrent-jobs".into(),
            "2".into(),
        ],
    );
    let done = server.submit_id("noop", json!({})).await;
    server
        .wait_for_status(&done, "completed", Duration::from_secs(10))
        .await;
    let failing = server
        .submit_id("sleep", json!({"seconds": 0, "steps": 1, "fail_with": "x"}))
        .await;
    server
        .wait_for_status(&failing, "failed", Duration::from_secs(10))
        .await;
    let running = server.submit_id("sleep", json!({"seconds": 30})).await;
    server
        .wait_for_status(&running, "running", Duration::from_secs(10))
        .await;
    server
        .submit(json!({"job_type": "noop", "delay_seconds": 3600}))
        .await;
    let cancelled = server
        .submit(json!({"job_type": "noop", "delay_seconds": 3600}))
        .await;
    server
        .post(
            &format!(
                "/api/v1/jobs/cancel/{}",
                cancelled["job_id"].as_str().unwrap()
            ),
            None,
        )
        .await;

    let stats = wait_until("the worker to register", Duration::from_secs(5), || async {
        let stats = server.stats().await;
        (stats["active_workers"] == 1).then_some(stats)
    })
    .await;
    assert_eq!(stats["pending_jobs"], 0);
    assert_eq!(stats["running_jobs"], 1);
    assert_eq!(stats["scheduled_jobs"], 1);
    assert_eq!(stats["completed_jobs"], 1);
    assert_eq!(stats["failed_jobs"], 1);
    assert_eq!(stats["cancelled_jobs"], 1);
    assert_eq!(stats["total_jobs"], 5);
    let expected_type = match kind {
        StoreKind::Sqlite => "sqlite",
        StoreKind::Redis => "redis",
    };
    assert_eq!(stats["queue_type"], expected_type);
    assert_eq!(stats["global_max_concurrent_jobs"], 4);
    assert_eq!(stats["per_user_max_concurrent_jobs"], 2);
    assert_eq!(stats["worker_health_status"], "healthy");
    assert!(stats["memory_usage_mb"].as_f64().unwrap() > 1.0, "{stats}");
    assert!(stats["cpu_usage_percent"].as_f64().is_some());
    assert!(
        stats["cache_size"].as_u64().unwrap() >= 1,
        "the running job is watched"
    );
    assert_utc(&stats["last_cleanup"]);

    let (status, workers) = server.get("/api/v1/jobs/workers").await;
    assert_eq!(status, 200);
    let workers = workers["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0]["running_jobs"], json!([running]));
    assert_eq!(workers[0]["pid"], server.pid());
}

async fn an_api_only_node_reports_no_workers(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let stats = server.stats().await;
    assert_eq!(stats["active_workers"], 0);
    assert_eq!(stats["worker_health_status"], "no_workers");
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
}

async fn a_disconnected_stream_costs_nothing_afterwards(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let id = server.submit_id("noop", json!({})).await;
    let response = server
        .http
        .get(server.at(&format!("/api/v1/jobs/status/{id}/stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_until("the stream to be held", Duration::from_secs(5), || async {
        (server.stats().await["cache_size"] == 1).then_some(())
    })
    .await;
    drop(response);
    wait_until(
        "the stream's watch to be released",
        Duration::from_secs(5),
        || async { (server.stats().await["cache_size"] == 0).then_some(()) },
    )
    .await;
}

async fn dependent_jobs_wait_for_their_dependencies(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let first = server
        .submit_id("sleep", json!({"seconds": 0.5, "steps": 1}))
        .await;
    let second = server
        .submit(json!({"job_type": "noop", "depends_on": [first]}))
        .await;
    assert_eq!(
        second["status"], "scheduled",
        "waits for its dependency: {second}"
    );
    assert_eq!(second["waiting_dependencies"], 1);
    assert_eq!(second["depends_on"], json!([first]));
    let second = second["job_id"].as_str().unwrap();
    server
        .wait_for_status(second, "completed", Duration::from_secs(20))
        .await;
    let first_done = server.job(&first).await;
    let second_done = server.job(second).await;
    assert!(second_done["started_at"].as_str() >= first_done["completed_at"].as_str());

    let (status, error) = server
        .post(
            "/api/v1/jobs",
            Some(json!({"job_type": "noop", "depends_on": [uuid::Uuid::now_v7()]})),
        )
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("ValidationError")),
        "{error}"
    );
}

/// A remote type (`[job_types.NAME] remote = true`) validates at
/// submission with its configured options, while an unknown type is still
/// refused; built-in workers never run its jobs, even of a built-in
/// pipeline type declared remote, and `/why` says no live worker serves it.
async fn a_remote_type_validates_and_waits_for_a_remote_worker(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let config = scratch.write(
        "jobd.toml",
        "[job_types.gpu]\nremote = true\nmax_attempts = 3\n\n\
         [job_types.extraction]\nremote = true\n",
    );
    let server = Server::serve(&scratch, &["--config".into(), config.display().to_string()]);
    let gpu = server
        .submit(json!({"job_type": "gpu", "user_id": "u"}))
        .await;
    assert_eq!(
        (&gpu["status"], &gpu["remote"], &gpu["max_attempts"]),
        (&json!("pending"), &json!(true), &json!(3)),
        "{gpu}"
    );
    let extraction = server
        .submit(json!({"job_type": "extraction", "user_id": "u"}))
        .await;
    assert_eq!(extraction["remote"], true, "{extraction}");
    let (status, error) = server
        .post("/api/v1/jobs", Some(json!({"job_type": "nope"})))
        .await;
    assert_eq!(
        (status, &error["error"]),
        (400, &json!("UnknownJobTypeError"))
    );
    assert!(
        error["message"].as_str().unwrap().contains("gpu"),
        "{error}"
    );

    // The built-in workers run a job of the same user submitted later...
    let noop = server
        .submit(json!({"job_type": "noop", "user_id": "u"}))
        .await;
    assert!(
        noop.get("remote").is_none(),
        "only remote jobs say so: {noop}"
    );
    let noop = noop["job_id"].as_str().unwrap();
    server
        .wait_for_status(noop, "completed", Duration::from_secs(20))
        .await;
    // ...and never the remote ones.
    for job in [&gpu, &extraction] {
        let id = job["job_id"].as_str().unwrap();
        let now = server.job(id).await;
        assert_eq!(
            (&now["status"], &now["attempts"]),
            (&json!("pending"), &json!(0)),
            "{now}"
        );
        let (status, why) = server.get(&format!("/api/v1/jobs/status/{id}/why")).await;
        assert_eq!(status, 200);
        assert_eq!(why["reasons"][0]["reason"], "no_worker_for_type", "{why}");
        let message = why["reasons"][0]["message"].as_str().unwrap();
        assert!(message.contains(job["job_type"].as_str().unwrap()), "{why}");
    }
    let (_, workers) = server.get("/api/v1/jobs/workers").await;
    assert_eq!(workers["workers"][0]["remote"], false, "{workers}");
    assert_eq!(workers["workers"][0]["job_types"], json!([]), "{workers}");
}

crate::for_each_store!(
    submit_answers_201_with_the_job_and_its_location,
    listing_filters_and_pages_newest_first,
    listings_return_summaries_unless_asked_for_more,
    a_listing_with_big_fields_stays_within_its_byte_budget,
    dependent_jobs_wait_for_their_dependencies,
    a_job_runs_to_completed_with_result_progress_and_timings,
    execution_time_grows_while_a_job_runs,
    delayed_jobs_are_scheduled_then_run,
    failures_retry_with_backoff_then_fail_and_timeouts_fail,
    stats_count_every_status_and_report_the_process,
    an_api_only_node_reports_no_workers,
    a_remote_type_validates_and_waits_for_a_remote_worker,
    a_disconnected_stream_costs_nothing_afterwards,
);
