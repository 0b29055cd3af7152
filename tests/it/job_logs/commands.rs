//! Per-job logs of real `jobd` processes: an external command's stderr and
//! non-JSON stdout on success and on failure, a follow on an API node of a
//! job another process runs, and retention deleting the log.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind, wait_until};

const SCRIPT: &str = r#"#!/bin/sh
cat > /dev/null
echo "plain stdout line"
echo '{"progress": 0.5}'
echo "first stderr line" >&2
printf 'caf\303\251 \360\237\215\265\n' >&2
echo '{"result": {"ok": true}}'
if [ "$MODE" = fail ]; then
  echo "giving up" >&2
  exit 3
fi
printf 'last words without a newline' >&2
"#;

/// A server whose `script` type runs [`SCRIPT`] with `MODE` set.
fn script_server(scratch: &Scratch, mode: &str, extra: &[&str]) -> Server {
    let script = scratch.write("job.sh", SCRIPT);
    let config = scratch.write(
        "jobd.toml",
        &format!(
            "[job_types.script]\ncommand = [\"sh\", \"{}\"]\n",
            script.display()
        ),
    );
    let mut args = vec!["--config".to_string(), config.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::serve_env(scratch, &args, &[("MODE", mode)])
}

/// The (stream, line) pairs of a job's whole log.
async fn log_of(server: &Server, id: &str) -> Vec<(String, String)> {
    let (status, page) = server
        .get(&format!("/api/v1/jobs/status/{id}/logs?limit=1000"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap().to_owned(),
                l["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(s, l)| (s.to_string(), l.to_string()))
        .collect()
}

/// stdout and stderr are read apart, so only each stream's own order is
/// certain.
fn of_stream(lines: &[(String, String)], stream: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|(s, _)| s == stream)
        .map(|(_, l)| l.clone())
        .collect()
}

async fn an_external_commands_output_is_kept_on_success_and_on_failure(kind: StoreKind) {
    for mode in ["ok", "fail"] {
        let Some(scratch) = Scratch::new(kind) else {
            return;
        };
        let server = script_server(&scratch, mode, &[]);
        let id = server.submit_id("script", json!({})).await;
        let status = if mode == "ok" { "completed" } else { "failed" };
        let job = server
            .wait_for_status(&id, status, Duration::from_secs(20))
            .await;
        let lines = log_of(&server, &id).await;
        assert_eq!(
            of_stream(&lines, "stdout"),
            vec!["plain stdout line".to_string()],
            "JSON protocol lines are not logged: {lines:?}"
        );
        let mut stderr = pairs(&[("stderr", "first stderr line"), ("stderr", "café 🍵")]);
        if mode == "ok" {
            stderr.push(("stderr".into(), "last words without a newline".into()));
            assert_eq!(job["result"], json!({"ok": true}));
        } else {
            stderr.push(("stderr".into(), "giving up".into()));
            assert!(
                job["error"].as_str().unwrap().contains("giving up"),
                "the error still carries stderr's tail: {job}"
            );
        }
        let stderr: Vec<String> = stderr.into_iter().map(|(_, l)| l).collect();
        assert_eq!(of_stream(&lines, "stderr"), stderr, "{mode}");
        assert_eq!(lines.len(), 1 + stderr.len());
    }
}

async fn an_api_node_follows_a_job_another_process_runs(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let api = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let _worker = Server::worker(&scratch, &["--workers".into(), "2".into()]);
    let id = api
        .submit_id("sleep", json!({"seconds": 1.5, "steps": 5, "log": true}))
        .await;
    let response = api
        .http
        .get(api.at(&format!("/api/v1/jobs/status/{id}/logs/stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream().eventsource();
    let mut lines = Vec::new();
    let end: Value = loop {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on until its end event")
            .expect("a well-formed event");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        match event.event.as_str() {
            "log" => {
                assert_eq!(event.id, data["seq"].to_string());
                lines.push(data["line"].as_str().unwrap().to_owned());
            }
            "end" => break data,
            other => panic!("unexpected event {other}: {data}"),
        }
    };
    let expected: Vec<String> = (1..=5).map(|i| format!("step {i} of 5 done")).collect();
    assert_eq!(lines, expected);
    assert_eq!(end["status"], "completed");
    assert_eq!(end["next"], 5);
}

async fn retention_deletes_a_jobs_log(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = script_server(
        &scratch,
        "ok",
        &[
            "--completed-retention-seconds",
            "3",
            "--cleanup-interval-seconds",
            "0.5",
        ],
    );
    let id = server.submit_id("script", json!({})).await;
    server
        .wait_for_status(&id, "completed", Duration::from_secs(20))
        .await;
    assert!(!log_of(&server, &id).await.is_empty());
    let path = format!("/api/v1/jobs/status/{id}/logs");
    wait_until(
        "the log to go with its job",
        Duration::from_secs(20),
        || async {
            let (status, body) = server.get(&path).await;
            (status == 404).then_some(body)
        },
    )
    .await;
}

crate::for_each_store!(
    an_external_commands_output_is_kept_on_success_and_on_failure,
    an_api_node_follows_a_job_another_process_runs,
    retention_deletes_a_jobs_log,
);
