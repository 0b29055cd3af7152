//! Store trouble seen from the API: a watched job that leaves the store,
//! a store that stops answering during a scrape, writes that fail.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures::StreamExt;
use jobd::store::CleanupParams;
use serde_json::Value;
use serde_json::json;

use crate::app::{App, sse_events};
use crate::support::{StoreKind, wait_until};

/// How long a test gives the server to notice a job is gone.
const NOTICE: Duration = Duration::from_secs(10);

/// Deletes a job behind the server's back: Redis loses all its data
/// (`FLUSHALL`); on SQLite the row goes, as another process's cleanup
/// would delete it.
async fn lose_job(app: &mut App, kind: StoreKind, id: &str) {
    match kind {
        StoreKind::Redis => {
            let (mut conn, _) = app.raw_redis().await;
            let _: () = redis::cmd("FLUSHALL")
                .query_async(&mut conn)
                .await
                .expect("FLUSHALL");
        }
        StoreKind::Sqlite => {
            let path = app.state.settings.data_dir.join("jobd.sqlite3");
            let id = id.to_owned();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
                conn.busy_timeout(Duration::from_secs(5))
                    .expect("busy timeout");
                let deleted = conn
                    .execute("DELETE FROM jobs WHERE id = ?1", [id])
                    .expect("delete the job");
                assert_eq!(deleted, 1);
            })
            .await
            .expect("delete task");
        }
    }
}

async fn a_stream_of_a_job_that_leaves_the_store_ends_with_an_error_event(kind: StoreKind) {
    let Some(mut app) = App::on(kind).await else {
        return;
    };
    // No worker in-process: the job stays pending, its stream open.
    let job = app
        .submit(json!({"job_type": "sleep", "parameters": {"seconds": 60}}))
        .await;
    let id = job["job_id"].as_str().expect("job_id").to_owned();
    let request = Request::get(format!("/api/v1/jobs/status/{id}/stream"))
        .body(Body::empty())
        .expect("request");
    let response = app.send(request).await;
    assert_eq!(response.status(), 200);
    let mut events = std::pin::pin!(sse_events(response.into_body()));
    let (name, _) = events.next().await.expect("the first event");
    assert_eq!(name, "job_update");

    lose_job(&mut app, kind, &id).await;

    let rest: Vec<(String, String)> = tokio::time::timeout(NOTICE, events.collect())
        .await
        .expect("the stream ends once the job is gone");
    let (name, data) = rest.last().expect("a last event");
    assert_eq!(name, "error", "{rest:?}");
    let body: Value = serde_json::from_str(data).expect("JSON data");
    assert_eq!(body["error"], "JobNotFoundError", "{body}");
    assert_eq!(body["job_id"], id.as_str(), "{body}");
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn a_stream_of_a_job_that_leaves_the_store_ends_with_an_error_event_sqlite() {
    a_stream_of_a_job_that_leaves_the_store_ends_with_an_error_event(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_stream_of_a_job_that_leaves_the_store_ends_with_an_error_event_redis() {
    a_stream_of_a_job_that_leaves_the_store_ends_with_an_error_event(StoreKind::Redis).await;
}

async fn a_poll_of_a_job_that_leaves_the_store_answers_404(kind: StoreKind) {
    let Some(mut app) = App::on(kind).await else {
        return;
    };
    let job = app
        .submit(json!({"job_type": "sleep", "parameters": {"seconds": 60}}))
        .await;
    let id = job["job_id"].as_str().expect("job_id").to_owned();
    let (status, _) = app.post(&format!("/api/v1/jobs/cancel/{id}"), None).await;
    assert_eq!(status, 200);
    let redis = match kind {
        StoreKind::Redis => Some(app.raw_redis().await),
        StoreKind::Sqlite => None,
    };
    let app = &app;
    // Waiting for a restart of the cancelled job, up to 60 s.
    let poll_path = format!("/api/v1/jobs/status/{id}/poll?current_status=cancelled&timeout=60");
    let poll = app.get(&poll_path);
    let remove = async {
        // Let the poll start watching before the job goes.
        wait_until("the poll to watch the job", NOTICE, || async {
            app.state
                .bus
                .is_watched(id.parse().expect("uuid"))
                .then_some(())
        })
        .await;
        match redis {
            // The job's key deleted by hand.
            Some((mut conn, prefix)) => {
                // The poll's announcement reached Redis: its read follows.
                let watched = format!("{{{prefix}}}:watched");
                wait_until("the poll's announcement", NOTICE, || {
                    let mut conn = conn.clone();
                    let (watched, id) = (watched.clone(), id.clone());
                    async move {
                        let score: Option<f64> = redis::cmd("ZSCORE")
                            .arg(&watched)
                            .arg(&id)
                            .query_async(&mut conn)
                            .await
                            .expect("ZSCORE");
                        score.map(|_| ())
                    }
                })
                .await;
                let _: () = redis::cmd("DEL")
                    .arg(format!("{{{prefix}}}:job:{id}"))
                    .query_async(&mut conn)
                    .await
                    .expect("DEL");
            }
            // Retention cleanup of the cancelled job.
            None => {
                wait_until("the cleanup to delete the job", NOTICE, || async {
                    let report = app
                        .state
                        .store
                        .cleanup(&CleanupParams {
                            completed_retention: Duration::ZERO,
                            failed_retention: Duration::ZERO,
                            audit_retention: std::time::Duration::MAX,
                        })
                        .await
                        .expect("cleanup");
                    (report.jobs_deleted == 1).then_some(())
                })
                .await;
            }
        }
    };
    let ((status, body), ()) =
        tokio::time::timeout(NOTICE * 2, async { tokio::join!(poll, remove) })
            .await
            .expect("the poll answers once the job is gone");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "JobNotFoundError", "{body}");
    assert_eq!(body["job_id"], id.as_str(), "{body}");
}

#[tokio::test]
async fn a_poll_of_a_job_that_leaves_the_store_answers_404_sqlite() {
    a_poll_of_a_job_that_leaves_the_store_answers_404(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_poll_of_a_job_that_leaves_the_store_answers_404_redis() {
    a_poll_of_a_job_that_leaves_the_store_answers_404(StoreKind::Redis).await;
}

/// Resumes a paused process when dropped, so a failing test leaves no
/// stopped `redis-server` behind.
struct Paused(i32);

impl Paused {
    fn pause(pid: u32) -> Paused {
        let pid = i32::try_from(pid).expect("pid");
        // SAFETY: kill(2) on a child process of this test.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a child process of this test.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// The value of an unlabelled sample in a `/metrics` text.
fn sample(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(str::to_owned)
}

async fn scrape(app: &App) -> (u16, String) {
    let request = Request::get("/metrics")
        .body(Body::empty())
        .expect("request");
    let response = app.send(request).await;
    let status = response.status().as_u16();
    let body = crate::app::body_bytes(response).await;
    (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

#[tokio::test]
async fn a_scrape_while_redis_is_paused_answers_store_down_within_3_seconds() {
    let Some(mut app) = App::on(StoreKind::Redis).await else {
        return;
    };
    let (status, text) = scrape(&app).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&text, "jobd_store_up").as_deref(),
        Some("1"),
        "{text}"
    );

    let paused = Paused::pause(app.redis().pid());
    let started = std::time::Instant::now();
    let (status, text) = tokio::time::timeout(Duration::from_secs(20), scrape(&app))
        .await
        .expect("the scrape answers");
    let took = started.elapsed();
    drop(paused);
    eprintln!("scrape with Redis paused took {took:?}");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(3), "the scrape took {took:?}");
    assert_eq!(
        sample(&text, "jobd_store_up").as_deref(),
        Some("0"),
        "{text}"
    );
    assert_eq!(sample(&text, "jobd_jobs_completed_total"), None, "{text}");
    assert!(!text.contains("jobd_queue_jobs"), "{text}");

    // Resumed, the store answers again.
    wait_until("the store to answer a scrape again", NOTICE, || async {
        let (_, text) = scrape(&app).await;
        (sample(&text, "jobd_store_up").as_deref() == Some("1")).then_some(())
    })
    .await;
}

/// Asserts `/health` answers 503 `StoreUnavailableError` saying writes fail.
fn assert_writes_failing(status: u16, body: &Value) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "StoreUnavailableError", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("refuses writes"), "{body}");
}

#[tokio::test]
async fn health_is_503_while_redis_refuses_writes() {
    let Some(mut app) = App::on(StoreKind::Redis).await else {
        return;
    };
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200, "{body}");
    let (mut conn, _) = app.raw_redis().await;
    let config = |key: &'static str, value: &'static str| {
        let mut conn = conn.clone();
        async move {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(key)
                .arg(value)
                .query_async(&mut conn)
                .await
                .expect("CONFIG SET");
        }
    };
    config("maxmemory-policy", "noeviction").await;
    config("maxmemory", "1").await;

    let (status, body) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"job_type": "noop", "parameters": {}})),
        )
        .await;
    assert_eq!(status, 503, "a submission fails: {body}");
    let (status, body) = app.get("/health").await;
    assert_writes_failing(status, &body);

    config("maxmemory", "0").await;
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 200, "writes work again: {body}");
    let _: () = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_the_sqlite_file_cannot_grow() {
    let Some(scratch) = crate::support::Scratch::new(StoreKind::Sqlite) else {
        return;
    };
    // A full disk, for this process only: files may not grow past 2 MiB
    // (ulimit -f counts 512- or 1024-byte blocks by shell; 4096 either
    // way is enough to start), and the write fails with EFBIG instead of
    // the signal killing the process.
    let server = crate::support::Server::serve_after(&scratch, "trap '' XFSZ; ulimit -f 4096", &[]);
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    let filler = "x".repeat(200_000);
    wait_until(
        "a submission refused for want of space",
        NOTICE * 3,
        || async {
            let (status, body) = server
                .post(
                    "/api/v1/jobs",
                    Some(json!({"job_type": "sleep", "delay_seconds": 3600,
                    "parameters": {"seconds": 1, "filler": filler}})),
                )
                .await;
            assert!(status == 201 || status == 503, "{status}: {body}");
            (status == 503).then_some(())
        },
    )
    .await;
    let (status, body) = wait_until("/health to say writes fail", NOTICE, || async {
        let (status, body) = server.get("/health").await;
        (status == 503).then_some((status, body))
    })
    .await;
    assert_writes_failing(status, &body);
}
