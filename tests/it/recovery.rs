//! Durability and recovery: kill -9 of the server, lost workers, graceful
//! shutdown, and a worker process sharing the store with an API node.

use std::time::Duration;

use jobd::cli::client::Client;
use serde_json::json;

use crate::support::{Scratch, Server, StoreKind, wait_until};

async fn acknowledged_jobs_survive_kill_9(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(server.submit_id("noop", json!({})).await);
    }
    server.kill9();
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    for id in &ids {
        assert_eq!(server.job(id).await["status"], "pending");
    }
    assert_eq!(server.stats().await["pending_jobs"], 200);
}

async fn jobs_running_when_the_server_died_are_recovered_after_restart(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            server
                .submit_id("sleep", json!({"seconds": 1.5, "steps": 3}))
                .await,
        );
    }
    for id in &ids {
        server
            .wait_for_status(id, "running", Duration::from_secs(10))
            .await;
    }
    server.kill9();

    let server = Server::serve(&scratch, &[]);
    for id in &ids {
        let job = server
            .wait_for_status(id, "completed", Duration::from_secs(30))
            .await;
        assert_eq!(job["interruptions"], 1, "{job}");
        assert_eq!(
            job["attempts"], 1,
            "the interruption spent no attempt: {job}"
        );
    }
}

/// A restart after a crash takes back the dead process's jobs at once: its
/// registration names this host and a pid that is gone, so the job need not
/// wait out its lease (a minute by default).
async fn a_restart_resumes_the_jobs_of_its_crashed_predecessor_at_once(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let id = server.submit_id("sleep", json!({"seconds": 60})).await;
    let before = server
        .wait_for_status(&id, "running", Duration::from_secs(10))
        .await;
    server.kill9();
    let server = Server::serve(&scratch, &[]);
    let restarted = std::time::Instant::now();
    wait_until("the job to run again", Duration::from_secs(2), || async {
        let job = server.job(&id).await;
        (job["status"] == "running" && job["worker_id"] != before["worker_id"]).then_some(())
    })
    .await;
    assert!(restarted.elapsed() < Duration::from_secs(2));
    assert_eq!(server.job(&id).await["interruptions"], 1);
}

async fn a_job_that_keeps_losing_its_worker_fails_as_worker_lost(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let args = vec!["--max-interruptions".to_string(), "0".into()];
    let server = Server::serve(&scratch, &args);
    let id = server.submit_id("sleep", json!({"seconds": 30})).await;
    server
        .wait_for_status(&id, "running", Duration::from_secs(10))
        .await;
    server.kill9();
    let server = Server::serve(&scratch, &args);
    let job = server
        .wait_for_status(&id, "failed", Duration::from_secs(30))
        .await;
    assert!(
        job["error"].as_str().unwrap().contains("worker lost"),
        "{job}"
    );
}

async fn graceful_shutdown_finishes_short_jobs_and_requeues_long_ones(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &["--shutdown-grace-seconds".into(), "1.5".into()]);
    let long = server.submit_id("sleep", json!({"seconds": 60})).await;
    let short = server
        .submit_id("sleep", json!({"seconds": 0.5, "steps": 1}))
        .await;
    server
        .wait_for_status(&long, "running", Duration::from_secs(10))
        .await;
    server
        .wait_for_status(&short, "running", Duration::from_secs(10))
        .await;
    assert!(
        server.terminate(Duration::from_secs(15)),
        "clean exit on SIGTERM"
    );

    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    assert_eq!(server.job(&short).await["status"], "completed");
    let long = server.job(&long).await;
    assert_eq!(long["status"], "pending", "{long}");
    assert_eq!(long["attempts"], 0, "the stopped attempt was given back");
    let stats = server.stats().await;
    assert_eq!(stats["active_workers"], 0, "the worker unregistered");
}

async fn a_worker_process_serves_an_api_node_on_the_same_store(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let out = scratch.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let config = scratch.write(
        "jobd.toml",
        &format!(
            "[job_types.hang]\ncommand = [\"sh\", \"-c\", \"echo $$ > {}/$JOBD_JOB_ID.pid; exec sleep 60\"]\n",
            out.display()
        ),
    );
    let with_config = |extra: &[&str]| {
        let mut args = vec!["--config".to_string(), config.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let api = Server::serve(&scratch, &with_config(&["--workers", "0"]));
    let worker = Server::worker(&scratch, &with_config(&["--workers", "2"]));
    wait_until(
        "the worker to register",
        Duration::from_secs(10),
        || async { (api.stats().await["active_workers"] == 1).then_some(()) },
    )
    .await;

    // A change made by the worker process reaches a stream on the API node.
    let id = api
        .submit_id("sleep", json!({"seconds": 0.4, "steps": 2}))
        .await;
    let client = Client::new(&api.url);
    let mut last = (String::new(), serde_json::Value::Null);
    tokio::time::timeout(
        Duration::from_secs(20),
        client.follow(&format!("/api/v1/jobs/status/{id}/stream"), |name, data| {
            last = (name.to_owned(), data.clone());
            true
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(last.0, "job_complete");
    assert_eq!(last.1["status"], "completed");

    // A cancel on the API node stops the job's process on the worker.
    let id = api.submit_id("hang", json!({})).await;
    let running = api
        .wait_for_status(&id, "running", Duration::from_secs(10))
        .await;
    assert!(
        running["worker_id"]
            .as_str()
            .unwrap()
            .contains(&worker.pid().to_string())
    );
    let pid = wait_until("the command to start", Duration::from_secs(10), || async {
        std::fs::read_to_string(out.join(format!("{id}.pid")))
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
    })
    .await;
    assert!(crate::support::process_alive(pid));
    api.post(&format!("/api/v1/jobs/cancel/{id}"), None).await;
    wait_until(
        "the worker to kill the command",
        Duration::from_secs(10),
        || async { (!crate::support::process_alive(pid)).then_some(()) },
    )
    .await;
    assert_eq!(api.job(&id).await["status"], "cancelled");
}

crate::for_each_store!(
    acknowledged_jobs_survive_kill_9,
    jobs_running_when_the_server_died_are_recovered_after_restart,
    a_restart_resumes_the_jobs_of_its_crashed_predecessor_at_once,
    a_job_that_keeps_losing_its_worker_fails_as_worker_lost,
    graceful_shutdown_finishes_short_jobs_and_requeues_long_ones,
    a_worker_process_serves_an_api_node_on_the_same_store,
);
