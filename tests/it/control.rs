//! Cancel and restart, and external-command job types from a TOML config.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::{Scratch, Server, StoreKind, process_alive, wait_until};

const SCRIPT: &str = r#"#!/bin/sh
# Test job: records its input and pids, reports progress, then acts on
# the "mode" parameter.
input=$(cat)
echo "$input" > "$OUT_DIR/$JOBD_JOB_ID.input"
echo $$ > "$OUT_DIR/$JOBD_JOB_ID.pid"
case "$input" in
  *'"mode":"hang"'*)
    sleep 60 &
    echo $! > "$OUT_DIR/$JOBD_JOB_ID.child"
    echo '{"progress": 0.1}'
    wait ;;
  *'"mode":"fail"'*)
    echo "something went wrong" >&2
    exit 3 ;;
  *'"mode":"fail_for_good"'*)
    echo '{"retry": false}'
    echo "the input cannot be read" >&2
    exit 1 ;;
  *'"mode":"retry_soon"'*)
    echo '{"retry_after_seconds": 0.2}'
    exit 1 ;;
  *)
    echo "not json, ignored"
    echo '{"progress": 0.5, "items_processed": 1, "total_items": 2}'
    echo '{"items_processed": 2, "total_items": 2, "result": {"ok": true}}' ;;
esac
"#;

/// A server whose `script` job type runs [`SCRIPT`], writing into `out`.
fn script_server(scratch: &Scratch, out: &Path, extra: &[String]) -> Server {
    let script = scratch.write("job.sh", SCRIPT);
    let config = scratch.write(
        "jobd.toml",
        &format!(
            "per_user_max_concurrent_jobs = 2\n\n[job_types.script]\ncommand = [\"sh\", \"{}\"]\n",
            script.display()
        ),
    );
    std::fs::create_dir_all(out).unwrap();
    let mut args = vec!["--config".to_string(), config.display().to_string()];
    args.extend(extra.iter().cloned());
    Server::serve_env(
        scratch,
        &args,
        &[
            ("OUT_DIR", out.to_str().unwrap()),
            ("JOBD_GLOBAL_MAX_CONCURRENT_JOBS", "6"),
        ],
    )
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

async fn an_external_command_gets_its_job_and_reports_progress_and_result(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let out = scratch.path().join("out");
    let server = script_server(&scratch, &out, &[]);
    let stats = server.stats().await;
    assert_eq!(
        stats["global_max_concurrent_jobs"], 6,
        "from the environment"
    );
    assert_eq!(
        stats["per_user_max_concurrent_jobs"], 2,
        "from the TOML file"
    );

    let id = server
        .submit_id("script", json!({"document": "a.txt"}))
        .await;
    let job = server
        .wait_for_status(&id, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(job["result"], json!({"ok": true}));
    assert_eq!(job["metrics"]["items_processed"], 2);
    assert_eq!(job["metrics"]["total_items"], 2);
    let input: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(format!("{id}.input"))).unwrap())
            .unwrap();
    assert_eq!(input["job_id"], id.as_str());
    assert_eq!(input["parameters"], json!({"document": "a.txt"}));

    let failing = server.submit_id("script", json!({"mode": "fail"})).await;
    let job = server
        .wait_for_status(&failing, "failed", Duration::from_secs(10))
        .await;
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("something went wrong"),
        "stderr tail in the error: {error}"
    );
    assert!(error.contains('3'), "exit status in the error: {error}");
}

async fn cancelling_a_running_external_command_kills_its_process_group(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let out = scratch.path().join("out");
    let server = script_server(&scratch, &out, &[]);
    let id = server.submit_id("script", json!({"mode": "hang"})).await;
    let (pid, child) = wait_until("the command to start", Duration::from_secs(10), || async {
        Some((
            read_pid(&out.join(format!("{id}.pid")))?,
            read_pid(&out.join(format!("{id}.child")))?,
        ))
    })
    .await;
    assert!(process_alive(pid) && process_alive(child));

    let (status, answer) = server
        .post(&format!("/api/v1/jobs/cancel/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "cancelled");
    assert_eq!(answer["message"], "Job cancelled successfully");
    wait_until(
        "the command and its child to die",
        Duration::from_secs(10),
        || async { (!process_alive(pid) && !process_alive(child)).then_some(()) },
    )
    .await;
    // The cancelled job never turns into anything else.
    let job = server.job(&id).await;
    assert_eq!(job["status"], "cancelled");
    let stats = server.stats().await;
    assert_eq!(stats["running_jobs"], 0);
}

async fn cancel_applies_to_pending_scheduled_and_running_jobs_only(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(
        &scratch,
        &["--per-user-max-concurrent-jobs".into(), "1".into()],
    );
    let running = server.submit_id("sleep", json!({"seconds": 30})).await;
    server
        .wait_for_status(&running, "running", Duration::from_secs(10))
        .await;
    let pending = server.submit_id("noop", json!({})).await;
    let scheduled = server
        .submit(json!({"job_type": "noop", "delay_seconds": 3600}))
        .await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server.job(&pending).await["status"],
        "pending",
        "held by the per-user limit"
    );
    for id in [&pending, &scheduled, &running] {
        let (status, answer) = server
            .post(&format!("/api/v1/jobs/cancel/{id}"), None)
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["job_id"], id.as_str());
        assert_eq!(answer["status"], "cancelled");
        assert_eq!(server.job(id).await["status"], "cancelled");
    }
    let (status, error) = server
        .post(&format!("/api/v1/jobs/cancel/{running}"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(error["error"], "JobAlreadyCompletedError");
    assert_eq!(error["current_status"], "cancelled");
    assert_eq!(error["job_id"], running.as_str());

    let done = server.submit_id("noop", json!({})).await;
    server
        .wait_for_status(&done, "completed", Duration::from_secs(10))
        .await;
    let (status, error) = server
        .post(&format!("/api/v1/jobs/cancel/{done}"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(error["current_status"], "completed");
    assert_eq!(
        error["message"],
        "Cannot cancel job that is already completed"
    );
}

async fn restart_requeues_failed_and_cancelled_jobs_with_fresh_parameters(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let id = server
        .submit_id(
            "sleep",
            json!({"seconds": 0, "steps": 1, "fail_with": "wrong input"}),
        )
        .await;
    let failed = server
        .wait_for_status(&id, "failed", Duration::from_secs(10))
        .await;
    assert_eq!(failed["error"], "wrong input");

    let (status, answer) = server
        .post(
            &format!("/api/v1/jobs/restart/{id}"),
            Some(json!({"parameters": {"seconds": 0.1, "steps": 2}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["job_id"], id.as_str());
    assert_eq!(answer["status"], "pending");
    assert_eq!(answer["message"], "Job restarted and re-queued");
    assert_eq!(answer["job"]["error"], serde_json::Value::Null);
    assert_eq!(answer["job"]["progress"], 0.0);
    assert_eq!(answer["job"]["attempts"], 0);
    let done = server
        .wait_for_status(&id, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(done["parameters"], json!({"seconds": 0.1, "steps": 2}));
    assert_eq!(done["result"]["steps"], 2);

    let (status, error) = server
        .post(&format!("/api/v1/jobs/restart/{id}"), None)
        .await;
    assert_eq!(status, 409, "a completed job does not restart");
    assert_eq!(error["error"], "JobNotRestartableError");
    assert_eq!(error["current_status"], "completed");

    // A cancelled job restarts too, keeping its parameters without a body.
    let cancelled = server
        .submit(json!({"job_type": "noop", "delay_seconds": 3600, "parameters": {"k": 1}}))
        .await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, error) = server
        .post(&format!("/api/v1/jobs/restart/{cancelled}"), None)
        .await;
    assert_eq!(
        (status, error["current_status"].as_str()),
        (409, Some("scheduled"))
    );
    server
        .post(&format!("/api/v1/jobs/cancel/{cancelled}"), None)
        .await;
    let (status, _) = server
        .post(&format!("/api/v1/jobs/restart/{cancelled}"), None)
        .await;
    assert_eq!(status, 200);
    let job = server
        .wait_for_status(&cancelled, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(job["parameters"], json!({"k": 1}));

    let (status, error) = server
        .post(
            &format!("/api/v1/jobs/restart/{cancelled}"),
            Some(json!({"parameters": 5})),
        )
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("ValidationError"))
    );
}

/// A handler can overrule the retry rule: an external command's
/// `"retry": false` fails the job at its first attempt whatever attempts
/// are left, and `"retry_after_seconds"` retries it then, not after the
/// job type's backoff (a minute here).
#[tokio::test]
async fn a_failure_can_say_never_retry_or_when() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("sqlite scratch");
    let out = scratch.path().join("out");
    let server = script_server(
        &scratch,
        &out,
        &["--retry-backoff-seconds".into(), "60".into()],
    );
    let for_good = server
        .submit(json!({"job_type": "script", "parameters": {"mode": "fail_for_good"}, "max_attempts": 3}))
        .await;
    let soon = server
        .submit(
            json!({"job_type": "script", "parameters": {"mode": "retry_soon"}, "max_attempts": 2}),
        )
        .await;
    let failed = server
        .wait_for_status(
            for_good["job_id"].as_str().unwrap(),
            "failed",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("the input cannot be read"),
        "{failed}"
    );
    let failed = server
        .wait_for_status(
            soon["job_id"].as_str().unwrap(),
            "failed",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        failed["attempts"], 2,
        "retried after 0.2 s, not 60: {failed}"
    );
}

crate::for_each_store!(
    an_external_command_gets_its_job_and_reports_progress_and_result,
    cancelling_a_running_external_command_kills_its_process_group,
    cancel_applies_to_pending_scheduled_and_running_jobs_only,
    restart_requeues_failed_and_cancelled_jobs_with_fresh_parameters,
);
