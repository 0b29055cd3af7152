//! `POST /api/v1/jobs/batch`, in-process on both stores: jobs stored in
//! order, one depending on earlier ones by position; a bad entry is a 400
//! naming its position and stores nothing; the size limits.

use serde_json::{Value, json};

use crate::app::App;
use crate::support::StoreKind;

/// How many jobs the store holds (at most 1,000), by its listing.
async fn stored(app: &App) -> usize {
    let (_, page) = app.get("/api/v1/jobs?limit=1000").await;
    page["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .len()
}

async fn a_batch_is_stored_in_order_with_dependencies_by_position(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let (status, answer) = app
        .post(
            "/api/v1/jobs/batch",
            Some(json!({"jobs": [
                {"job_type": "noop", "parameters": {"n": 0}, "user_id": "alice"},
                {"job_type": "noop", "parameters": {"n": 1}, "user_id": "bob", "delay_seconds": 3600},
                {"job_type": "noop", "parameters": {"n": 2}, "user_id": "alice", "depends_on": [0, 1]},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let jobs = answer["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(job["parameters"]["n"], i, "{job}");
    }
    assert_eq!(jobs[1]["status"], "scheduled");
    assert_eq!(jobs[2]["status"], "scheduled");
    assert_eq!(
        jobs[2]["depends_on"],
        json!([jobs[0]["job_id"], jobs[1]["job_id"]])
    );
    assert_eq!(jobs[2]["waiting_dependencies"], 2);
    // A stored job can also be named by id.
    let (status, answer) = app
        .post(
            "/api/v1/jobs/batch",
            Some(json!({"jobs": [{"job_type": "noop", "depends_on": [jobs[1]["job_id"]]}]})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(stored(&app).await, 4);
}

async fn a_bad_entry_names_its_position_and_stores_nothing(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let good = json!({"job_type": "noop"});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"jobs": [good, good, {"job_type": "nope"}]}),
            "jobs[2]",
        ),
        (
            json!({"jobs": [good, {"job_type": "noop", "depends_on": [1]}]}),
            "jobs[1]",
        ),
        (
            json!({"jobs": [good, {"job_type": "noop", "priority": "high"}]}),
            "jobs[1]",
        ),
        (
            json!({"jobs": [{"job_type": "noop", "idempotency_key": "k"}]}),
            "jobs[0]",
        ),
        (json!({"jobs": []}), "1 to 1000"),
        (json!({"jobs": vec![good.clone(); 1001]}), "1 to 1000"),
        (json!({"jobs": [good], "extra": 1}), "extra"),
    ];
    for (body, names) in cases {
        let (status, error) = app.post("/api/v1/jobs/batch", Some(body.clone())).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["error"], "ValidationError", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(names), "{names}: {message}");
    }
    assert_eq!(stored(&app).await, 0, "nothing was stored");
    // A position outside a batch means nothing.
    let (status, error) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"job_type": "noop", "depends_on": [0]})),
        )
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("ValidationError"))
    );
}

async fn a_thousand_jobs_go_in_one_call(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let jobs: Vec<Value> = (0..1000)
        .map(|i| json!({"job_type": "noop", "parameters": {"i": i}, "user_id": format!("u{}", i % 7)}))
        .collect();
    let (status, answer) = app
        .post("/api/v1/jobs/batch", Some(json!({"jobs": jobs})))
        .await;
    assert_eq!(status, 201);
    let answered = answer["jobs"].as_array().unwrap();
    assert_eq!(answered.len(), 1000);
    assert_eq!(answered[999]["parameters"]["i"], 999);
    assert_eq!(stored(&app).await, 1000);
}

crate::for_each_store!(
    a_batch_is_stored_in_order_with_dependencies_by_position,
    a_bad_entry_names_its_position_and_stores_nothing,
    a_thousand_jobs_go_in_one_call,
);
