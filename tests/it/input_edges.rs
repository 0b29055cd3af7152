//! Issue 13's input edges, in-process on the real router: a duplicate
//! dependency, bodies that are not JSON objects, empty cursors, and user
//! ids (counted in characters; no invisible characters).

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use jobd::model::JobId;
use jobd::store::{ClaimParams, Outcome};
use serde_json::{Value, json};

use crate::app::{App, app, body_bytes};
use crate::support::StoreKind;

/// Asserts a 400 `ValidationError` whose message contains `needle`.
fn assert_validation((status, error): (u16, Value), needle: &str, case: &str) {
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("ValidationError")),
        "{case}: {error}"
    );
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{case}: {message:?} lacks {needle:?}"
    );
}

async fn a_duplicate_dependency_counts_once(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let first = app.submit(json!({"job_type": "noop"})).await;
    let first_id = first["job_id"].as_str().unwrap();
    let other = app.submit(json!({"job_type": "noop"})).await;
    let other_id = other["job_id"].as_str().unwrap();
    let dependent = app
        .submit(json!({
            "job_type": "noop",
            "depends_on": [first_id, other_id, first_id, first_id],
        }))
        .await;
    assert_eq!(dependent["status"], "scheduled", "{dependent}");
    assert_eq!(
        dependent["depends_on"],
        json!([first_id, other_id]),
        "each dependency once, in first-occurrence order"
    );
    assert_eq!(dependent["waiting_dependencies"], 2, "{dependent}");
    let dependent_id = dependent["job_id"].as_str().unwrap();

    // Complete both dependencies through the store, as a worker would.
    let store = &app.state.store;
    let claimed = store
        .claim(&ClaimParams {
            worker_id: "w".into(),
            serves: jobd::store::Serves::BuiltIn,
            max_jobs: 10,
            global_max: 10,
            per_user_max: 10,
            limits: Default::default(),
            lease: Duration::from_secs(60),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2, "only the two dependencies are pending");
    for c in claimed {
        store
            .finish(
                c.claim,
                Outcome::Completed {
                    result: json!(null),
                },
            )
            .await
            .expect("finish");
    }
    let (status, job) = app
        .get(&format!("/api/v1/jobs/status/{dependent_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        job["status"], "pending",
        "released once both completed: {job}"
    );
    assert_eq!(job["waiting_dependencies"], 0);
    let claimed = store
        .claim(&ClaimParams {
            worker_id: "w".into(),
            serves: jobd::store::Serves::BuiltIn,
            max_jobs: 10,
            global_max: 10,
            per_user_max: 10,
            limits: Default::default(),
            lease: Duration::from_secs(60),
        })
        .await
        .expect("claim");
    let ids: Vec<JobId> = claimed.iter().map(|c| c.job.id).collect();
    assert_eq!(
        ids,
        vec![dependent_id.parse::<JobId>().unwrap()],
        "claimable"
    );
}

crate::for_each_store!(a_duplicate_dependency_counts_once);

#[tokio::test]
async fn bodies_must_be_json_objects_and_cursors_job_ids() {
    let app = app().await;
    let job = app.submit(json!({"job_type": "noop"})).await;
    let id = job["job_id"].as_str().unwrap();
    let restart = format!("/api/v1/jobs/restart/{id}");
    let (status, _) = app.post(&format!("/api/v1/jobs/cancel/{id}"), None).await;
    assert_eq!(status, 200);

    // Arrays would be read by position; scalars are no body either.
    let nine = r#"["noop", null, null, null, null, null, null, null, null]"#;
    for (path, body) in [
        (restart.as_str(), r#"[{"seconds": 1}]"#),
        (restart.as_str(), "[]"),
        (restart.as_str(), "1"),
        ("/api/v1/jobs", nine),
        ("/api/v1/jobs", r#"["noop"]"#),
        ("/api/v1/jobs", r#""noop""#),
        ("/api/v1/jobs/pipeline", r#"[[{"name": "a", "text": "b"}]]"#),
    ] {
        let answer = app.call("POST", path, body).await;
        assert_validation(
            answer,
            "must be a JSON object",
            &format!("POST {path} {body}"),
        );
    }
    // Malformed JSON that does not start with `{` is still malformed JSON.
    assert_validation(
        app.call("POST", &restart, "[1,").await,
        "invalid JSON body",
        "truncated array",
    );
    // A required body given as null is missing.
    assert_validation(
        app.call("POST", "/api/v1/jobs", "null").await,
        "job_type",
        "null submission",
    );

    // On restart, where the body is optional, null is no body.
    let (status, restarted) = app.call("POST", &restart, " null\n").await;
    assert_eq!(status, 200, "{restarted}");
    assert_eq!(restarted["status"], "pending");
    assert_eq!(restarted["job"]["parameters"], json!({}));

    for cursor in ["", "%20", "zz"] {
        assert_validation(
            app.get(&format!("/api/v1/jobs?cursor={cursor}")).await,
            "cursor",
            &format!("cursor={cursor:?}"),
        );
    }
    let (status, page) = app.get(&format!("/api/v1/jobs?cursor={id}")).await;
    assert_eq!(status, 200, "a job id is a cursor: {page}");
}

/// Submits with `user_id` in the body; (status, body).
async fn submit_as(app: &App, user: &str) -> (u16, Value) {
    app.post(
        "/api/v1/jobs",
        Some(json!({"job_type": "noop", "user_id": user})),
    )
    .await
}

#[tokio::test]
async fn user_ids_are_counted_in_characters_and_must_be_visible() {
    let app = app().await;
    let longest = "é".repeat(128);
    let (status, job) = submit_as(&app, &longest).await;
    assert_eq!(
        status, 201,
        "128 characters (256 bytes) are accepted: {job}"
    );
    assert_eq!(job["user_id"], longest.as_str());
    assert_validation(
        submit_as(&app, &"é".repeat(129)).await,
        "1 to 128 characters",
        "129 characters",
    );
    let (status, job) = submit_as(&app, "José 東京").await;
    assert_eq!(status, 201, "{job}");

    for (user, needle) in [
        ("", "1 to 128"),
        ("   ", "whitespace"),
        ("\u{3000}", "whitespace"),
        ("ali\u{200B}ce", "U+200B"),
        ("alice\u{200D}", "U+200D"),
        ("\u{202E}ecila", "U+202E"),
        ("\u{2066}alice\u{2069}", "U+2066"),
        ("alice\u{200E}", "U+200E"),
        ("\u{FEFF}alice", "U+FEFF"),
        ("ali\u{AD}ce", "U+00AD"),
        ("ali\tce", "U+0009"),
    ] {
        assert_validation(submit_as(&app, user).await, needle, &format!("{user:?}"));
        // The pipeline's jobs take their user the same way.
        let answer = app
            .post(
                "/api/v1/jobs/pipeline",
                Some(json!({"documents": [{"name": "a.md", "text": "b"}], "user_id": user})),
            )
            .await;
        assert_validation(answer, needle, &format!("pipeline {user:?}"));
    }

    // The listing's filter: an invisible character is refused, not a
    // silently empty page; an empty filter is still no filter.
    assert_validation(
        app.get("/api/v1/jobs?user_id=ali%E2%80%8Bce").await,
        "U+200B",
        "list filter",
    );
    assert_validation(
        app.get("/api/v1/jobs?user_id=%20%20").await,
        "whitespace",
        "list filter",
    );
    let (status, page) = app.get("/api/v1/jobs?user_id=").await;
    assert_eq!(status, 200, "{page}");

    // The header: trimmed, then held to the same rules.
    for (header, needle) in [("   ", "1 to 128"), ("a\tb", "U+0009")] {
        let request = Request::post("/api/v1/jobs")
            .header("X-User-Id", header)
            .body(Body::from(json!({"job_type": "noop"}).to_string()))
            .expect("request");
        let response = app.send(request).await;
        let status = response.status().as_u16();
        let error: Value = serde_json::from_slice(&body_bytes(response).await).expect("JSON");
        assert_validation((status, error), needle, &format!("X-User-Id {header:?}"));
    }
    let request = Request::post("/api/v1/jobs")
        .header("X-User-Id", " bob ")
        .body(Body::from(json!({"job_type": "noop"}).to_string()))
        .expect("request");
    let response = app.send(request).await;
    assert_eq!(response.status(), 201);
    let job: Value = serde_json::from_slice(&body_bytes(response).await).expect("JSON");
    assert_eq!(job["user_id"], "bob");
}

/// The pipeline's inline documents are objects with a `text` (found by the
/// schema-driven fuzzer: `[[null, null]]` was a 201 whose first job then
/// failed). Each is a 400 now, and nothing is stored.
#[tokio::test]
async fn pipeline_documents_are_checked_at_submission() {
    let app = app().await;
    for documents in [
        json!([[null, null]]),
        json!([null]),
        json!(["text"]),
        json!([{"name": "a.md"}]),
        json!([{"text": 1}]),
        json!([{"text": "x", "txt": "y"}]),
    ] {
        let body = json!({"documents": documents});
        assert_validation(
            app.post("/api/v1/jobs/pipeline", Some(body.clone())).await,
            "invalid JSON body",
            &body.to_string(),
        );
    }
    let (_, page) = app.get("/api/v1/jobs").await;
    assert_eq!(page["jobs"], json!([]), "nothing stored");
    let ok = json!({"documents": [{"name": "a.md", "text": "# A\n\nb", "format": "markdown"}]});
    let (status, answer) = app.post("/api/v1/jobs/pipeline", Some(ok)).await;
    assert_eq!(status, 201, "{answer}");
}
