//! Idempotent submission over HTTP: `Idempotency-Key` (or the body's
//! `idempotency_key`) makes a repeat answer 200 with the first job, a
//! different body under the key a 422 that stores nothing; in-process on
//! both stores. And on Redis, 1,000 concurrent identical submissions
//! spread over two API node processes store exactly one job.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::app::{App, body_bytes};
use crate::support::{Scratch, Server, StoreKind};

/// POST /api/v1/jobs with `body` and, if given, an `Idempotency-Key`
/// header: status, the replay header, the JSON answer.
async fn submit(app: &App, body: &Value, key: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = Request::post("/api/v1/jobs").header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = app
        .send(request.body(Body::from(body.to_string())).unwrap())
        .await;
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    let json = serde_json::from_slice(&body_bytes(response).await).unwrap_or(Value::Null);
    (status, replayed, json)
}

async fn a_repeat_answers_the_first_job_and_another_body_is_refused(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let body = json!({"job_type": "noop", "parameters": {"n": 1}, "user_id": "alice"});
    let (status, replayed, first) = submit(&app, &body, Some("order-17")).await;
    assert_eq!((status, replayed), (201, None), "{first}");
    let id = first["job_id"].clone();

    // The same request, spelled differently (key order), by header or body.
    let reordered = json!({"user_id": "alice", "parameters": {"n": 1}, "job_type": "noop"});
    let (status, replayed, again) = submit(&app, &reordered, Some("order-17")).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (200, Some("true")),
        "{again}"
    );
    assert_eq!(again["job_id"], id);
    let mut in_body = body.clone();
    in_body["idempotency_key"] = json!("order-17");
    let (status, _, again) = submit(&app, &in_body, None).await;
    assert_eq!((status, &again["job_id"]), (200, &id), "{again}");

    // Another body under the key: 422, nothing stored.
    let other = json!({"job_type": "noop", "parameters": {"n": 2}, "user_id": "alice"});
    let (status, _, error) = submit(&app, &other, Some("order-17")).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"], "IdempotencyKeyMismatchError");
    // The key is Alice's: Bob's same key is his own job.
    let bobs = json!({"job_type": "noop", "parameters": {"n": 1}, "user_id": "bob"});
    let (status, _, bob) = submit(&app, &bobs, Some("order-17")).await;
    assert_eq!(status, 201, "{bob}");
    assert_ne!(bob["job_id"], id);
    let (_, listed) = app.get("/api/v1/jobs?limit=10").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2, "{listed}");

    // Bad keys, and a header and a body that disagree: 400.
    for key in ["has space", &"k".repeat(256)] {
        let (status, _, error) = submit(&app, &body, Some(key)).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (400, Some("ValidationError")),
            "{key}"
        );
    }
    let (status, _, error) = submit(&app, &in_body, Some("order-18")).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("ValidationError")),
        "{error}"
    );
}

crate::for_each_store!(a_repeat_answers_the_first_job_and_another_body_is_refused);

/// Submissions fired at once.
const CONCURRENT: usize = 1_000;

#[tokio::test]
async fn a_thousand_concurrent_submissions_over_two_nodes_store_one_job() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    let nodes = [
        Server::serve(&scratch, &["--workers".into(), "0".into()]),
        Server::serve(&scratch, &["--workers".into(), "0".into()]),
    ];
    let body = json!({"job_type": "noop", "parameters": {"order": 17}, "user_id": "alice"});
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENT)
        .build()
        .unwrap();
    let requests = (0..CONCURRENT).map(|i| {
        let url = nodes[i % 2].at("/api/v1/jobs");
        let request = client
            .post(url)
            .header("idempotency-key", "checkout-42")
            .json(&body);
        async move {
            let response = request.send().await.expect("submit");
            let status = response.status().as_u16();
            let job: Value = response.json().await.expect("JSON");
            (
                status,
                job["job_id"].as_str().unwrap_or_default().to_owned(),
            )
        }
    });
    let answers = futures::future::join_all(requests).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let replayed = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!((created, replayed), (1, CONCURRENT - 1), "{answers:?}");
    let ids: std::collections::HashSet<&str> = answers.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 1, "every answer names the one job");
    for node in &nodes {
        let (_, listed) = node.get("/api/v1/jobs?limit=100").await;
        assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{listed}");
    }
}
