//! The client commands of the `jobd` binary against a real server.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Scratch, Server, StoreKind, cli};

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn every_client_command_works_against_a_server(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let url = server.url.clone();
    let run = move |args: Vec<&str>| {
        let url = url.clone();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                cli(&url, &args)
            })
            .await
            .unwrap()
        }
    };

    let (code, out, err) = run(vec![
        "submit",
        "sleep",
        "--param",
        "seconds=0.3",
        "--param",
        "steps=3",
        "--user",
        "carol",
        "--priority",
        "2",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let job = json_of(&out);
    assert_eq!(job["user_id"], "carol");
    assert_eq!(job["parameters"]["seconds"], 0.3);
    let id = job["job_id"].as_str().unwrap().to_owned();
    let id = id.as_str();

    let (code, out, err) = run(vec!["watch", id]).await;
    assert_eq!(code, 0, "watch of a completed job exits 0: {err}");
    assert!(out.contains("completed"), "{out}");

    let (code, out, _) = run(vec!["status", id]).await;
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["status"], "completed");

    let (code, out, _) = run(vec!["list", "--user", "carol", "--status", "completed"]).await;
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["jobs"][0]["job_id"], id);

    let (code, out, _) = run(vec!["stats"]).await;
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["completed_jobs"], 1);

    let (code, _, err) = run(vec!["cancel", id]).await;
    assert_eq!(code, 1, "cancelling a completed job fails");
    assert!(err.contains("JobAlreadyCompletedError"), "{err}");

    let (code, out, _) = run(vec![
        "submit",
        "sleep",
        "--params-json",
        r#"{"seconds": 60}"#,
    ])
    .await;
    assert_eq!(code, 0);
    let long = json_of(&out)["job_id"].as_str().unwrap().to_owned();
    let long = long.as_str();
    server
        .wait_for_status(long, "running", Duration::from_secs(10))
        .await;
    let watcher = tokio::spawn(run(vec!["watch", long]));
    let (code, out, _) = run(vec!["cancel", long]).await;
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["status"], "cancelled");
    let (code, _, err) = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 4, "watch exits 4 for a cancelled job: {err}");

    let (code, out, err) = run(vec![
        "restart",
        long,
        "--params-json",
        r#"{"seconds": 0, "steps": 1, "fail_with": "nope"}"#,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_of(&out)["status"], "pending");
    let (code, _, err) = run(vec!["watch", long]).await;
    assert_eq!(code, 3, "watch exits 3 for a failed job: {err}");
    assert!(err.contains("nope"), "{err}");

    let (code, _, err) = run(vec!["status", "not-a-uuid"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("InvalidJobIdError"), "{err}");
    let (code, _, _) = run(vec!["submit", "noop", "--params-json", "[1]"]).await;
    assert_eq!(code, 2, "bad local input is a usage error");

    // An idempotent submission, twice: one job.
    let submit_once = vec![
        "submit",
        "noop",
        "--idempotency-key",
        "cli-once",
        "--user",
        "dave",
    ];
    let (code, first, err) = run(submit_once.clone()).await;
    assert_eq!(code, 0, "{err}");
    let (code, again, err) = run(submit_once).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_of(&first)["job_id"], json_of(&again)["job_id"]);

    // A batch from JSON Lines, the second line depending on the first.
    let lines = scratch.write(
        "batch.jsonl",
        "{\"job_type\": \"noop\", \"user_id\": \"erin\"}\n\n\
         {\"job_type\": \"noop\", \"user_id\": \"erin\", \"depends_on\": [0]}\n",
    );
    let (code, out, err) = run(vec!["batch", lines.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    let jobs = json_of(&out)["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1]["depends_on"][0], jobs[0]["job_id"]);
    let bad = scratch.write("bad.jsonl", "{\"job_type\": \"noop\"}\nnot json\n");
    let (code, _, err) = run(vec!["batch", bad.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[tokio::test]
async fn the_cli_says_when_the_server_is_unreachable() {
    let (code, _, err) = tokio::task::spawn_blocking(|| cli("http://127.0.0.1:9", &["stats"]))
        .await
        .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach jobd"), "{err}");
}

crate::for_each_store!(every_client_command_works_against_a_server,);
