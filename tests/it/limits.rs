//! Global and per-user concurrency limits, and fairness between users.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind, wait_until};

const GLOBAL: usize = 4;
const PER_USER: usize = 2;

async fn limits_hold_across_processes_and_a_lone_user_is_not_starved(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let limits = vec![
        "--global-max-concurrent-jobs".to_string(),
        GLOBAL.to_string(),
        "--per-user-max-concurrent-jobs".into(),
        PER_USER.to_string(),
        // More slots than the global limit, in two processes: only the
        // store's claim can keep the limit.
        "--workers".into(),
        "4".into(),
    ];
    let server = Server::serve(&scratch, &limits);
    let _worker = Server::worker(&scratch, &limits);

    let mut backlog = Vec::new();
    for i in 0..100 {
        let user = format!("user{}", i % 5);
        let job = server
            .submit(json!({"job_type": "sleep", "user_id": user, "parameters": {"seconds": 0.15, "steps": 1}}))
            .await;
        backlog.push(job["job_id"].as_str().unwrap().to_owned());
    }
    let lone = server
        .submit(json!({"job_type": "noop", "user_id": "user5"}))
        .await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut samples = 0;
    let mut max_running = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, page) = server.get("/api/v1/jobs?status=running&limit=1000").await;
        let running = page["jobs"].as_array().cloned().unwrap_or_default();
        let mut per_user: HashMap<String, usize> = HashMap::new();
        for job in &running {
            *per_user
                .entry(job["user_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert!(
            running.len() <= GLOBAL,
            "global limit exceeded: {} running",
            running.len()
        );
        for (user, n) in &per_user {
            assert!(
                *n <= PER_USER,
                "per-user limit exceeded: {user} has {n} running"
            );
        }
        let stats = server.stats().await;
        assert!(
            stats["running_jobs"].as_u64().unwrap() <= GLOBAL as u64,
            "{stats}"
        );
        samples += 1;
        max_running = max_running.max(running.len());
        if stats["completed_jobs"] == 101 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog did not drain: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(samples > 10, "the run was sampled ({samples} samples)");
    assert!(
        max_running >= 2,
        "jobs did run concurrently (max {max_running})"
    );

    // The lone job of the sixth user started before most of the backlog.
    let lone_started = started_at(&server.job(&lone).await);
    let mut started_after = 0;
    for id in &backlog {
        if started_at(&server.job(id).await) > lone_started {
            started_after += 1;
        }
    }
    assert!(
        started_after >= 50,
        "only {started_after} of 100 backlog jobs started after the lone user's job"
    );
}

fn started_at(job: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(job["started_at"].as_str().unwrap()).unwrap()
}

async fn within_a_user_higher_priority_runs_first_then_fifo(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(
        &scratch,
        &[
            "--workers".into(),
            "0".into(),
            "--per-user-max-concurrent-jobs".into(),
            "1".into(),
        ],
    );
    let mut ids = Vec::new();
    for priority in [0, 0, 5, 0, 5] {
        let job = server
            .submit(json!({
                "job_type": "sleep", "user_id": "u", "priority": priority,
                "parameters": {"seconds": 0.02, "steps": 1}
            }))
            .await;
        ids.push(job["job_id"].as_str().unwrap().to_owned());
    }
    // Now a worker with one slot: it must take them one at a time in order.
    let _worker = Server::worker(&scratch, &["--workers".into(), "1".into()]);
    wait_until("all to complete", Duration::from_secs(20), || async {
        (server.stats().await["completed_jobs"] == 5).then_some(())
    })
    .await;
    let mut order = Vec::new();
    for id in &ids {
        order.push((started_at(&server.job(id).await), id.clone()));
    }
    order.sort();
    let got: Vec<&String> = order.iter().map(|(_, id)| id).collect();
    assert_eq!(got, vec![&ids[2], &ids[4], &ids[0], &ids[1], &ids[3]]);
}

/// The reasons of `/why` for job `id`.
async fn why_reasons(server: &Server, id: &str) -> (Vec<String>, Value) {
    let (status, why) = server.get(&format!("/api/v1/jobs/status/{id}/why")).await;
    assert_eq!(status, 200, "{why}");
    let reasons = why["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect();
    (reasons, why)
}

async fn keys_types_and_rates_hold_jobs_back_and_why_says_so(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let config = scratch.write(
        "jobd.toml",
        "[job_types.sleep]\nconcurrency_key = \"/doc\"\nmax_concurrent_per_key = 1\n\
         max_concurrent = 2\n\
         [job_types.noop]\nrate_limit = { count = 1, per_seconds = 60 }\n",
    );
    let server = Server::serve(
        &scratch,
        &[
            "--config".into(),
            config.display().to_string(),
            "--workers".into(),
            "4".into(),
        ],
    );
    let long = |doc: Value| json!({"job_type": "sleep", "parameters": {"seconds": 30, "doc": doc}});
    // The key comes from the pointer; a non-string value keys by its JSON;
    // a submission's own key wins.
    let first = server.submit(long(json!("d1"))).await;
    assert_eq!(first["concurrency_key"], "d1");
    let second = server.submit(long(json!("d1"))).await;
    let numbered = server.submit(long(json!(7))).await;
    assert_eq!(numbered["concurrency_key"], "7");
    let own = server
        .submit(json!({"job_type": "sleep", "concurrency_key": "mine",
                       "parameters": {"seconds": 30, "doc": "d1"}}))
        .await;
    assert_eq!(own["concurrency_key"], "mine");
    let none = server.submit(json!({"job_type": "noop"})).await;
    assert!(none.get("concurrency_key").is_none(), "{none}");
    let (status, refused) = server
        .post(
            "/api/v1/jobs",
            Some(json!({"job_type": "noop", "concurrency_key": ""})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");

    let id = |job: &Value| job["job_id"].as_str().unwrap().to_owned();
    server
        .wait_for_status(&id(&first), "running", Duration::from_secs(20))
        .await;
    server
        .wait_for_status(&id(&numbered), "running", Duration::from_secs(20))
        .await;
    // d1 runs one job; the type runs two.
    let (reasons, why) = why_reasons(&server, &id(&second)).await;
    assert!(reasons.contains(&"key_limit".to_owned()), "{why}");
    assert!(reasons.contains(&"type_limit".to_owned()), "{why}");
    assert_eq!(why["concurrency_key"], "d1");
    let (reasons, why) = why_reasons(&server, &id(&own)).await;
    assert_eq!(reasons, ["type_limit"], "{why}");
    assert_eq!(server.job(&id(&second)).await["status"], "pending");

    // One noop a minute: the second waits for the window.
    server
        .wait_for_status(&id(&none), "completed", Duration::from_secs(20))
        .await;
    let late = server.submit(json!({"job_type": "noop"})).await;
    let (reasons, why) = why_reasons(&server, &id(&late)).await;
    assert_eq!(reasons, ["rate_limited"], "{why}");
    assert!(why["rate_limit_opens_at"].is_string(), "{why}");
    assert_eq!(server.job(&id(&late)).await["status"], "pending");

    // Cancelling the running d1 job lets the waiting one run.
    let (status, _) = server
        .post(&format!("/api/v1/jobs/cancel/{}", id(&first)), None)
        .await;
    assert!(status == 200 || status == 202, "cancel: {status}");
    server
        .wait_for_status(&id(&second), "running", Duration::from_secs(20))
        .await;
}

crate::for_each_store!(
    limits_hold_across_processes_and_a_lone_user_is_not_starved,
    within_a_user_higher_priority_runs_first_then_fifo,
    keys_types_and_rates_hold_jobs_back_and_why_says_so,
);
