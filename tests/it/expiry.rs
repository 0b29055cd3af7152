//! Expiry over HTTP: a job not started by its deadline (`expires_in_seconds`,
//! or its type's `expires_in_seconds`) is cancelled with the error
//! `expired` within a second of it, and its dependents follow; a job that
//! started in time runs to the end; a bad `expires_in_seconds` is a 400.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind, wait_until};

fn millis(time: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

async fn jobs_not_started_by_their_deadline_expire_within_a_second(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let config = scratch.write("jobd.toml", "[job_types.noop]\nexpires_in_seconds = 1.5\n");
    // No workers: nothing starts, so every deadline passes.
    let server = Server::serve(
        &scratch,
        &[
            "--workers".into(),
            "0".into(),
            "--config".into(),
            config.display().to_string(),
        ],
    );
    let own = server
        .submit(json!({"job_type": "noop", "expires_in_seconds": 1}))
        .await;
    let by_type = server.submit(json!({"job_type": "noop"})).await;
    let scheduled = server
        .submit(json!({"job_type": "sleep", "delay_seconds": 60, "expires_in_seconds": 1}))
        .await;
    let own_id = own["job_id"].as_str().unwrap().to_owned();
    let dependent = server
        .submit(json!({"job_type": "sleep", "depends_on": [own_id]}))
        .await;
    let lasting = server.submit(json!({"job_type": "sleep"})).await;
    assert!(lasting.get("expires_at").is_none(), "{lasting}");
    assert_eq!(
        millis(&own["expires_at"]) - millis(&own["created_at"]),
        1_000,
        "{own}"
    );
    assert_eq!(
        millis(&by_type["expires_at"]) - millis(&by_type["created_at"]),
        1_500,
        "{by_type}"
    );

    for job in [&own, &by_type, &scheduled] {
        let id = job["job_id"].as_str().unwrap();
        let done = wait_until("the job expires", Duration::from_secs(10), || async {
            let job = server.job(id).await;
            (job["status"] == "cancelled").then_some(job)
        })
        .await;
        assert_eq!(done["error"], "expired", "{done}");
        let late = millis(&done["completed_at"]) - millis(&done["expires_at"]);
        assert!(
            (0..=1_000).contains(&late),
            "expired {late} ms after its deadline: {done}"
        );
    }
    let dependent = server.job(dependent["job_id"].as_str().unwrap()).await;
    assert_eq!(dependent["status"], "cancelled", "{dependent}");
    assert_eq!(dependent["cancelled_by"], own["job_id"], "{dependent}");
    let lasting = server.job(lasting["job_id"].as_str().unwrap()).await;
    assert_eq!(lasting["status"], "pending", "{lasting}");

    // Bad deadlines: 400.
    for bad in [json!(0), json!(-1), json!(1e9), json!("soon")] {
        let (status, error) = server
            .post(
                "/api/v1/jobs",
                Some(json!({"job_type": "noop", "expires_in_seconds": bad})),
            )
            .await;
        assert_eq!(status, 400, "{bad} -> {error}");
    }
}

async fn a_job_started_in_time_runs_to_the_end(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let job = server
        .submit(json!({"job_type": "sleep", "parameters": {"seconds": 2}, "expires_in_seconds": 1}))
        .await;
    let id = job["job_id"].as_str().unwrap();
    let done = server
        .wait_for_status(id, "completed", Duration::from_secs(20))
        .await;
    assert!(
        millis(&done["started_at"]) <= millis(&done["expires_at"]),
        "{done}"
    );
    assert!(
        millis(&done["completed_at"]) > millis(&done["expires_at"]),
        "{done}"
    );
}

crate::for_each_store!(
    jobs_not_started_by_their_deadline_expire_within_a_second,
    a_job_started_in_time_runs_to_the_end
);
