//! The cluster's work in an API node's figures (issue 12): `jobd serve
//! --workers 0` beside a separate `jobd worker` process on one store. The
//! node's `/metrics` job totals and its dashboard's throughput (the
//! `/queue/throughput` answer and the live stream's `throughput` event)
//! count every job the worker finished; and a worker's own `/metrics`
//! (`--metrics-bind`, here through `JOBD_METRICS_BIND`) answers with its
//! own figures.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::metrics::Scrape;
use crate::support::{Scratch, Server, StoreKind, wait_until};

/// Jobs the worker completes, and fails, in the drain.
const COMPLETED: usize = 30;
const FAILED: usize = 2;

/// How long a figure may take to catch up (the throughput feed reads the
/// store once a second; the dashboard stream sends every 2 s).
const CATCH_UP: Duration = Duration::from_secs(20);

/// Submits the drain through `node` and waits until every job ended.
async fn drain(node: &Server) {
    let mut ids = Vec::new();
    for i in 0..COMPLETED {
        let job = node
            .submit(json!({"job_type": "noop", "user_id": format!("u{}", i % 3)}))
            .await;
        ids.push((job["job_id"].as_str().expect("id").to_owned(), "completed"));
    }
    for _ in 0..FAILED {
        let job = node
            .submit(json!({"job_type": "sleep", "parameters": {"seconds": 0.01, "steps": 1, "fail_with": "boom"}}))
            .await;
        ids.push((job["job_id"].as_str().expect("id").to_owned(), "failed"));
    }
    for (id, status) in &ids {
        node.wait_for_status(id, status, CATCH_UP).await;
    }
}

/// The completed and failed jobs of a `Throughput` answer, summed.
fn throughput_sums(throughput: &Value) -> (u64, u64) {
    let intervals = throughput["intervals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    intervals.iter().fold((0, 0), |(c, f), i| {
        (
            c + i["completed"].as_u64().unwrap_or(0),
            f + i["failed"].as_u64().unwrap_or(0),
        )
    })
}

/// Reads the dashboard's live stream until a `throughput` event shows
/// `want` (completed, failed), or panics at the deadline.
async fn stream_shows(node: &Server, want: (u64, u64)) {
    let response = node
        .http
        .get(node.at("/api/v1/jobs/queue/stream"))
        .send()
        .await
        .expect("open the queue stream");
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream().eventsource();
    let mut last = None;
    let found = tokio::time::timeout(CATCH_UP, async {
        while let Some(event) = events.next().await {
            let event = event.expect("a well-formed event");
            if event.event != "throughput" {
                continue;
            }
            let data: Value = serde_json::from_str(&event.data).expect("throughput JSON");
            let sums = throughput_sums(&data);
            if sums == want {
                return true;
            }
            last = Some(sums);
        }
        false
    })
    .await;
    assert!(
        found == Ok(true),
        "the dashboard stream never showed {want:?}; last {last:?}"
    );
}

async fn an_api_node_counts_and_charts_a_separate_workers_jobs(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let node = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let _worker = Server::worker(&scratch, &["--workers".into(), "4".into()]);
    drain(&node).await;

    // Read from the store at scrape time: exact as soon as the jobs ended.
    let scrape = Scrape::take(&node).await;
    let sum = |name: &str| -> f64 { scrape.all(name).iter().map(|s| s.value).sum() };
    assert_eq!(
        (
            sum("jobd_jobs_completed_total"),
            sum("jobd_jobs_failed_total"),
            sum("jobd_jobs_cancelled_total"),
        ),
        (COMPLETED as f64, FAILED as f64, 0.0),
        "the API node's job counters count the worker's jobs"
    );

    let want = (COMPLETED as u64, FAILED as u64);
    wait_until("/queue/throughput to show the drain", CATCH_UP, || async {
        let (status, throughput) = node.get("/api/v1/jobs/queue/throughput").await;
        assert_eq!(status, 200);
        (throughput_sums(&throughput) == want).then_some(())
    })
    .await;
    stream_shows(&node, want).await;
}

async fn a_worker_serves_its_own_metrics(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let node = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let worker = Server::worker_env(
        &scratch,
        &["--workers".into(), "3".into()],
        &[("JOBD_METRICS_BIND", "127.0.0.1:0")],
    );
    // The ready line names the address: "ID started; metrics on URL".
    let url = worker
        .url
        .split_once("; metrics on ")
        .map(|(_, url)| url.to_owned())
        .unwrap_or_else(|| panic!("no metrics address in {:?}", worker.url));
    let before = Scrape::at(&worker.http, &url).await;
    assert_eq!(before.value("jobd_worker_slots", &[]), 3.0);
    assert_eq!(before.value("jobd_worker_running_jobs", &[]), 0.0);
    assert_eq!(
        before.value("jobd_jobs_started_total", &[("job_type", "noop")]),
        0.0
    );
    assert!(
        before.all("jobd_jobs_completed_total").is_empty(),
        "the cluster's totals are the API nodes' to export"
    );

    drain(&node).await;
    let noop = [("job_type", "noop")];
    let completed = [("job_type", "noop"), ("status", "completed")];
    let failed = [("job_type", "sleep"), ("status", "failed")];
    let scrape = wait_until("the worker's own figures", CATCH_UP, || async {
        let scrape = Scrape::at(&worker.http, &url).await;
        (scrape.value("jobd_job_duration_seconds_count", &completed) == COMPLETED as f64
            && scrape.value("jobd_job_duration_seconds_count", &failed) == FAILED as f64)
            .then_some(scrape)
    })
    .await;
    assert!(scrape.value("jobd_jobs_started_total", &noop) >= COMPLETED as f64);
    assert!(scrape.value("jobd_job_queue_wait_seconds_count", &noop) >= COMPLETED as f64);
    assert_eq!(scrape.value("jobd_worker_running_jobs", &[]), 0.0);

    let other = worker
        .http
        .get(url.replace("/metrics", "/api/v1/jobs"))
        .send()
        .await
        .expect("GET another path");
    assert_eq!(other.status(), 404, "the worker serves /metrics only");
    assert!(worker.terminate(Duration::from_secs(10)), "a clean exit");
}

crate::for_each_store!(
    an_api_node_counts_and_charts_a_separate_workers_jobs,
    a_worker_serves_its_own_metrics
);
