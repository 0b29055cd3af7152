//! The HTTP worker protocol against real `jobd serve` processes: routing by
//! job type, the long-poll that claims and carries stops, fencing of lost
//! claims, retries, recovery of a vanished worker, graceful release, and
//! (on Redis) a second API node.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind, wait_until};

const CONFIG: &str = "[job_types.py_a]\nremote = true\nmax_attempts = 3\nretry_backoff_seconds = 0.1\n\n\
    [job_types.py_b]\nremote = true\n";

fn serve(scratch: &Scratch, extra: &[&str]) -> Server {
    let config = scratch.write("jobd.toml", CONFIG);
    // A waiting call waits up to one heartbeat interval: 2 s here.
    let mut args = vec![
        "--config".to_owned(),
        config.display().to_string(),
        "--heartbeat-interval-seconds".to_owned(),
        "2".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Server::serve(scratch, &args)
}

/// Registers a worker for `types` and returns its registration to echo.
async fn register(server: &Server, types: &[&str], concurrency: usize) -> Value {
    let (status, registered) = server
        .post(
            "/api/v1/workers/register",
            Some(json!({"host": "test-host", "pid": 1, "job_types": types, "concurrency": concurrency})),
        )
        .await;
    assert_eq!(status, 200, "{registered}");
    registered["worker"].clone()
}

/// One `exchange`, run in the background (a long-poll).
fn exchange_later(server: &Server, body: Value) -> tokio::task::JoinHandle<(Value, Instant)> {
    let http = server.http.clone();
    let url = server.at("/api/v1/workers/exchange");
    tokio::spawn(async move {
        let response = http.post(url).json(&body).send().await.expect("exchange");
        let status = response.status().as_u16();
        let reply: Value = response.json().await.expect("JSON");
        assert_eq!(status, 200, "{reply}");
        (reply, Instant::now())
    })
}

async fn exchange(server: &Server, body: Value) -> Value {
    let (status, reply) = server.post("/api/v1/workers/exchange", Some(body)).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

/// The claims of an exchange's jobs, as `held` quotes them.
fn claims(reply: &Value) -> Vec<Value> {
    reply["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| json!({"job_id": job["job_id"], "token": job["token"]}))
        .collect()
}

/// The worker's last heartbeat as the registry shows it.
async fn last_heartbeat(server: &Server, worker: &Value) -> Value {
    let (_, workers) = server.get("/api/v1/jobs/workers").await;
    workers["workers"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["worker_id"] == worker["worker_id"]))
        .map_or(Value::Null, |w| w["last_heartbeat"].clone())
}

/// Starts a long-poll and returns once it waits: a waiting call renews the
/// worker's registration after it has begun listening, so a newer
/// heartbeat in the registry says it listens.
async fn waiting_exchange(
    server: &Server,
    body: Value,
) -> tokio::task::JoinHandle<(Value, Instant)> {
    let before = last_heartbeat(server, &body["worker"]).await;
    let call = exchange_later(server, body.clone());
    wait_until("the call to wait", Duration::from_secs(10), || async {
        (last_heartbeat(server, &body["worker"]).await != before).then_some(())
    })
    .await;
    call
}

/// Cancels the job through `server` and checks that the waiting call
/// answers with its stop, well before the call's 2 s wait ends.
async fn cancel_stops(
    server: &Server,
    id: &str,
    waiting: tokio::task::JoinHandle<(Value, Instant)>,
) {
    let (status, _) = server
        .post(&format!("/api/v1/jobs/cancel/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let cancelled = Instant::now();
    let (reply, answered) = waiting.await.unwrap();
    assert_eq!(
        reply["stop"],
        json!([{"job_id": id, "reason": "cancelled"}]),
        "{reply}"
    );
    assert!(answered.duration_since(cancelled) < Duration::from_millis(1500));
}

async fn a_remote_worker_takes_only_its_types_and_wakes_on_new_work(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = serve(&scratch, &[]);
    let worker = register(&server, &["py_a"], 4).await;
    let (_, workers) = server.get("/api/v1/jobs/workers").await;
    let listed = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["worker_id"] == worker["worker_id"])
        .cloned()
        .expect("the remote worker is listed");
    assert_eq!(
        (&listed["remote"], &listed["job_types"]),
        (&json!(true), &json!(["py_a"]))
    );

    let waiting = waiting_exchange(
        &server,
        json!({"worker": worker, "max_jobs": 4, "wait_seconds": 2}),
    )
    .await;
    let b = server.submit_id("py_b", json!({})).await;
    let noop = server.submit_id("noop", json!({})).await;
    let submitted = Instant::now();
    let a = server.submit_id("py_a", json!({"n": 1})).await;
    let (reply, answered) = waiting.await.unwrap();
    let jobs = reply["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{reply}");
    assert_eq!(
        (&jobs[0]["job_id"], &jobs[0]["job"]["parameters"]),
        (&json!(a), &json!({"n": 1}))
    );
    assert!(
        answered.duration_since(submitted) < Duration::from_millis(1500),
        "the waiting call woke on the submission, before its 2 s wait ended"
    );
    server
        .wait_for_status(&noop, "completed", Duration::from_secs(20))
        .await;
    assert_eq!(
        server.job(&b).await["status"],
        "pending",
        "nobody serves py_b"
    );
    let again = exchange(
        &server,
        json!({"worker": worker, "held": claims(&reply), "max_jobs": 3}),
    )
    .await;
    assert_eq!(again["jobs"], json!([]), "py_b never goes to a py_a worker");
}

async fn cancel_reaches_the_waiting_call_and_late_updates_are_refused(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = serve(&scratch, &[]);
    let worker = register(&server, &["py_a"], 1).await;
    let id = server.submit_id("py_a", json!({})).await;
    let claimed = exchange(&server, json!({"worker": worker, "max_jobs": 1})).await;
    let held = claims(&claimed);
    assert_eq!(held.len(), 1, "{claimed}");
    let (status, progress) = server
        .post("/api/v1/workers/progress", Some(json!({"job_id": id, "token": held[0]["token"], "progress": 0.25, "items_processed": 1})))
        .await;
    assert_eq!(
        (status, &progress["progress"]),
        (200, &json!(0.25)),
        "{progress}"
    );

    let waiting = waiting_exchange(
        &server,
        json!({"worker": worker, "held": held, "max_jobs": 0, "wait_seconds": 2}),
    )
    .await;
    cancel_stops(&server, &id, waiting).await;

    let late = exchange(
        &server,
        json!({"worker": worker, "finished": [{"job_id": id, "token": held[0]["token"], "status": "completed", "result": 1}]}),
    )
    .await;
    assert_eq!(late["finished"][0]["error"], "ClaimLostError", "{late}");
    let (status, error) = server
        .post(
            "/api/v1/workers/progress",
            Some(json!({"job_id": id, "token": held[0]["token"], "progress": 0.5})),
        )
        .await;
    assert_eq!((status, &error["error"]), (409, &json!("ClaimLostError")));
    let job = server.job(&id).await;
    assert_eq!(
        (&job["status"], &job["result"], &job["progress"]),
        (&json!("cancelled"), &Value::Null, &json!(0.25))
    );
}

async fn one_call_ends_attempts_and_claims_their_replacements(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = serve(&scratch, &["--workers", "0"]);
    let worker = register(&server, &["py_a"], 3).await;
    let ids: Vec<String> =
        futures::future::join_all((0..6).map(|i| server.submit_id("py_a", json!({"i": i})))).await;
    let first = exchange(&server, json!({"worker": worker, "max_jobs": 3})).await;
    let held = claims(&first);
    assert_eq!(held.len(), 3);
    let finished = vec![
        json!({"job_id": held[0]["job_id"], "token": held[0]["token"], "status": "completed", "result": {"ok": true}}),
        json!({"job_id": held[1]["job_id"], "token": held[1]["token"], "status": "failed", "error": "bad input", "retry": false}),
        json!({"job_id": held[2]["job_id"], "token": held[2]["token"], "status": "failed", "error": "flaky"}),
    ];
    let second = exchange(
        &server,
        json!({"worker": worker, "finished": finished, "max_jobs": 3}),
    )
    .await;
    let statuses: Vec<&Value> = second["finished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("completed"), &json!("failed"), &json!("scheduled")],
        "{second}"
    );
    assert_eq!(
        second["jobs"].as_array().unwrap().len(),
        3,
        "the freed slots are taken again"
    );
    let done = server.job(held[0]["job_id"].as_str().unwrap()).await;
    assert_eq!(done["result"], json!({"ok": true}));
    let failed = server.job(held[1]["job_id"].as_str().unwrap()).await;
    assert_eq!(
        (&failed["error"], &failed["attempts"]),
        (&json!("bad input"), &json!(1))
    );
    assert_eq!(ids.len(), 6);
}

async fn a_vanished_worker_loses_its_jobs_to_the_lease_and_release_gives_back(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = serve(&scratch, &["--workers", "0"]);
    let gone = register(&server, &["py_a"], 1).await;
    let id = server.submit_id("py_a", json!({})).await;
    let claimed = exchange(&server, json!({"worker": gone, "max_jobs": 1})).await;
    let held = claims(&claimed);
    // The worker stops calling: its lease (3 s) ends and the job returns.
    let job = wait_until(
        "the job to be recovered",
        Duration::from_secs(20),
        || async {
            let job = server.job(&id).await;
            (job["status"] == "pending").then_some(job)
        },
    )
    .await;
    assert_eq!(job["interruptions"], 1, "{job}");
    let late = exchange(
        &server,
        json!({"worker": gone, "finished": [{"job_id": id, "token": held[0]["token"], "status": "completed"}]}),
    )
    .await;
    assert_eq!(late["finished"][0]["error"], "ClaimLostError", "{late}");

    // A worker that leaves gives its job back without spending an attempt.
    let polite = register(&server, &["py_a"], 1).await;
    let again = exchange(&server, json!({"worker": polite, "max_jobs": 1})).await;
    let before = server.job(&id).await["attempts"].clone();
    let (status, _) = server
        .post(
            "/api/v1/workers/unregister",
            Some(json!({"worker": polite, "release": claims(&again)})),
        )
        .await;
    assert_eq!(status, 204);
    let job = server.job(&id).await;
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(
        job["attempts"].as_u64(),
        before.as_u64().map(|n| n - 1),
        "{job}"
    );
    let (_, workers) = server.get("/api/v1/jobs/workers").await;
    assert!(
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["worker_id"] != polite["worker_id"]),
        "{workers}"
    );
}

async fn bad_calls_are_refused_with_the_error_shape(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = serve(&scratch, &["--workers", "0"]);
    let (status, error) = server
        .post(
            "/api/v1/workers/register",
            Some(json!({"host": "h", "job_types": ["noop"]})),
        )
        .await;
    assert_eq!(
        (status, &error["error"]),
        (400, &json!("ValidationError")),
        "{error}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("py_a"),
        "{error}"
    );
    let worker = register(&server, &["py_a"], 2).await;
    let unknown = json!({"job_id": uuid::Uuid::now_v7(), "token": uuid::Uuid::now_v7()});
    let (status, error) = server.post("/api/v1/workers/progress", Some(unknown)).await;
    assert_eq!(
        (status, &error["error"]),
        (409, &json!("ClaimLostError")),
        "{error}"
    );
    for body in [
        json!({"worker": worker, "max_jobs": 3}),
        json!({"worker": worker, "wait_seconds": 2000}),
        json!({"worker": worker, "finished": [{"job_id": uuid::Uuid::now_v7(), "token": uuid::Uuid::now_v7(), "status": "failed", "retry_after_seconds": -1}]}),
        json!({"worker": {"worker_id": "x y"}}),
    ] {
        let (status, error) = server
            .post("/api/v1/workers/exchange", Some(body.clone()))
            .await;
        assert_eq!(
            (status, &error["error"]),
            (400, &json!("ValidationError")),
            "{body}: {error}"
        );
    }
}

/// On Redis, two API nodes: work submitted on one wakes a worker waiting
/// on the other, and a cancel on one reaches the worker's call on the other.
#[tokio::test]
async fn a_second_api_node_wakes_and_stops_a_worker_waiting_on_the_first() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    let first = serve(&scratch, &["--workers", "0"]);
    let second = serve(&scratch, &["--workers", "0"]);
    let worker = register(&first, &["py_a"], 1).await;
    let waiting = waiting_exchange(
        &first,
        json!({"worker": worker, "max_jobs": 1, "wait_seconds": 2}),
    )
    .await;
    let submitted = Instant::now();
    let id = second.submit_id("py_a", json!({})).await;
    let (reply, answered) = waiting.await.unwrap();
    assert_eq!(reply["jobs"][0]["job_id"], json!(id), "{reply}");
    assert!(answered.duration_since(submitted) < Duration::from_millis(1500));

    let waiting = waiting_exchange(
        &first,
        json!({"worker": worker, "held": claims(&reply), "wait_seconds": 2}),
    )
    .await;
    cancel_stops(&second, &id, waiting).await;
}

crate::for_each_store!(
    a_remote_worker_takes_only_its_types_and_wakes_on_new_work,
    cancel_reaches_the_waiting_call_and_late_updates_are_refused,
    one_call_ends_attempts_and_claims_their_replacements,
    a_vanished_worker_loses_its_jobs_to_the_lease_and_release_gives_back,
    bad_calls_are_refused_with_the_error_shape,
);
