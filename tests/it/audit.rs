//! The audit log over HTTP, against a real `jobd serve` on each store:
//! submit, pipeline submit, cancel and restart are recorded with who, what,
//! when and from where; `GET /api/v1/audit` pages and filters them; and
//! the cleanup pass removes entries past `audit_retention_seconds`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind, wait_until};

crate::for_each_store!(
    mutations_are_recorded_with_actor_action_target_and_remote_address,
    old_entries_are_removed_by_cleanup
);

/// POST as user `alice`, returning (status, body).
async fn post_as_alice(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.at(path))
        .header("X-User-Id", "alice")
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn audit(server: &Server, query: &str) -> Value {
    let (status, page) = server.get(&format!("/api/v1/audit{query}")).await;
    assert_eq!(status, 200, "{page}");
    page
}

async fn mutations_are_recorded_with_actor_action_target_and_remote_address(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let (status, job) = post_as_alice(
        &server,
        "/api/v1/jobs",
        json!({"job_type": "noop", "parameters": {"secret": "s3cr3t"}}),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["job_id"].as_str().expect("job_id").to_owned();
    let (status, body) =
        post_as_alice(&server, &format!("/api/v1/jobs/cancel/{id}"), json!(null)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        post_as_alice(&server, &format!("/api/v1/jobs/restart/{id}"), json!(null)).await;
    assert_eq!(status, 200, "{body}");
    // Refused: not recorded (only changes made are).
    let (status, _) = server
        .post(&format!("/api/v1/jobs/restart/{id}"), None)
        .await;
    assert_eq!(status, 409);
    let (status, pipeline) = server
        .post(
            "/api/v1/jobs/pipeline",
            Some(json!({"documents": [{"name": "a.md", "text": "hello"}]})),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");

    // Read at once: the node writes its waiting entries first.
    let page = audit(&server, "").await;
    let entries = page["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 7, "{page}");
    let text = page.to_string();
    assert!(!text.contains("s3cr3t"), "no job parameters: {text}");
    let (restart, cancel, submit) = (&entries[4], &entries[5], &entries[6]);
    for (entry, action) in [
        (submit, "job.submit"),
        (cancel, "job.cancel"),
        (restart, "job.restart"),
    ] {
        assert_eq!(entry["action"], action, "{entry}");
        assert_eq!(entry["target"], id.as_str(), "{entry}");
        assert_eq!(entry["actor"]["user_id"], "alice", "{entry}");
        assert!(entry["actor"]["token_id"].is_null(), "{entry}");
        let remote = entry["remote_addr"].as_str().expect("remote_addr");
        assert!(remote.starts_with("127.0.0.1:"), "{entry}");
        let at = entry["at"].as_str().expect("at");
        assert!(
            at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{at}"
        );
    }
    assert_eq!(submit["status"], 201);
    assert_eq!(cancel["status"], 200);
    let stages: Vec<&Value> = entries[..4].iter().collect();
    let mut pipeline_ids: Vec<&str> = pipeline["job_ids"]
        .as_array()
        .expect("job_ids")
        .iter()
        .map(|v| v.as_str().expect("id"))
        .collect();
    pipeline_ids.reverse();
    for (entry, job_id) in stages.iter().zip(&pipeline_ids) {
        assert_eq!(entry["action"], "pipeline.submit", "{entry}");
        assert_eq!(entry["target"], *job_id, "{entry}");
        assert!(entry["actor"]["user_id"].is_null(), "no X-User-Id: {entry}");
    }

    // Pages and filters.
    let first = audit(&server, "?limit=5").await;
    assert_eq!(first["entries"].as_array().map(Vec::len), Some(5));
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let rest = audit(&server, &format!("?limit=5&cursor={cursor}")).await;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(rest["entries"][1]["action"], "job.submit");
    let alices = audit(
        &server,
        &format!("?actor=alice&target={id}&action=job.cancel"),
    )
    .await;
    assert_eq!(
        alices["entries"].as_array().map(Vec::len),
        Some(1),
        "{alices}"
    );
    assert_eq!(alices["entries"][0]["action"], "job.cancel");
    for bad in [
        "?action=job.delete",
        "?limit=0",
        "?cursor=nope",
        "?who=alice",
    ] {
        let (status, body) = server.get(&format!("/api/v1/audit{bad}")).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("ValidationError")),
            "{bad}: {body}"
        );
    }
}

async fn old_entries_are_removed_by_cleanup(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(
        &scratch,
        &[
            "--workers".into(),
            "0".into(),
            "--audit-retention-seconds".into(),
            "3".into(),
            "--cleanup-interval-seconds".into(),
            "0.5".into(),
        ],
    );
    let id = server.submit_id("noop", json!({})).await;
    let page = audit(&server, "").await;
    assert_eq!(page["entries"][0]["target"], id.as_str(), "{page}");
    wait_until(
        "the entry to pass its retention",
        Duration::from_secs(20),
        || async {
            let page = audit(&server, "").await;
            page["entries"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        },
    )
    .await;
    // The job is kept: it is pending, and jobs have their own retention.
    let (status, _) = server.get(&format!("/api/v1/jobs/status/{id}")).await;
    assert_eq!(status, 200);
}
