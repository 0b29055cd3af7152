//! What a burst leaves behind: the SQLite read connections a burst of
//! reads opened close again, and a poll or stream of a job that does not
//! exist leaves no watch, neither in the process nor in Redis.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::app::App;
use crate::support::{Scratch, Server, StoreKind, wait_until};

/// The SQLite connections a process holds open: the descriptors of its
/// write-ahead log, which each connection opens for itself and closes with
/// itself. (Not the database file's: SQLite keeps a closed connection's
/// descriptor of it open, for reuse, while other connections hold locks
/// on the file, and in WAL mode they always do.)
fn database_connections(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter(|target| target.to_string_lossy().ends_with("/jobd.sqlite3-wal"))
        .count()
}

/// Connections beside the readers: the writer, the change tailer and the
/// checkpointer.
const OTHER_CONNECTIONS: usize = 3;

/// Read connections kept however long they stay unused (`readers::FLOOR`).
const READER_FLOOR: usize = 2;

/// The most read connections on any machine (`readers::max_readers`).
const READER_MAX: usize = 32;

#[tokio::test]
async fn read_connections_a_burst_opened_close_again() {
    let Some(scratch) = Scratch::new(StoreKind::Sqlite) else {
        return;
    };
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    for user in 0..3 {
        let jobs: Vec<_> = (0..100)
            .map(|n| json!({"job_type": "noop", "user_id": format!("u{user}"), "parameters": {"n": n}}))
            .collect();
        for job in jobs {
            server.submit(job).await;
        }
    }
    let pid = server.pid();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(
                    database_connections(pid),
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // A burst of listings at once: each reads 300 rows on a read connection.
    let listings = (0..300).map(|_| server.get("/api/v1/jobs?limit=1000&include=parameters"));
    let answers = futures::future::join_all(listings).await;
    sampler.abort();
    assert!(
        answers
            .iter()
            .all(|(status, page)| *status == 200
                && page["jobs"].as_array().map(Vec::len) == Some(300)),
        "every listing answered"
    );
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        peak <= READER_MAX + OTHER_CONNECTIONS,
        "{peak} connections open during the burst"
    );
    // Unused connections close after 10 s idle, looked at every 2 s.
    let settled = READER_FLOOR + OTHER_CONNECTIONS;
    wait_until(
        "the read connections to come back to the floor",
        Duration::from_secs(30),
        || async { (database_connections(pid) <= settled).then_some(()) },
    )
    .await;
}

async fn a_watch_of_an_unknown_job_leaves_nothing(kind: StoreKind) {
    let Some(mut app) = App::on(kind).await else {
        return;
    };
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/v1/jobs/status/{unknown}/poll?timeout=0"),
        format!("/api/v1/jobs/status/{unknown}/poll?current_status=pending&timeout=1"),
        format!("/api/v1/jobs/status/{unknown}/stream"),
    ] {
        let request = Request::get(&path).body(Body::empty()).expect("request");
        let response = app.send(request).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(
        app.state.bus.cache_size(),
        0,
        "nothing watched in the process"
    );
    if kind == StoreKind::Redis {
        let (mut conn, prefix) = app.raw_redis().await;
        let watched: usize = ::redis::cmd("ZCARD")
            .arg(format!("{{{prefix}}}:watched"))
            .query_async(&mut conn)
            .await
            .expect("ZCARD");
        assert_eq!(watched, 0, "an unknown job is not announced as watched");
    }
    // A job that exists is still watched while polled, and let go after.
    let job = app.submit(json!({"job_type": "noop"})).await;
    let id = job["job_id"].as_str().expect("job_id");
    let (status, _) = app
        .get(&format!("/api/v1/jobs/status/{id}/poll?timeout=0"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.state.bus.cache_size(),
        0,
        "the poll's watch ended with it"
    );
    if kind == StoreKind::Redis {
        let (mut conn, prefix) = app.raw_redis().await;
        let score: Option<f64> = ::redis::cmd("ZSCORE")
            .arg(format!("{{{prefix}}}:watched"))
            .arg(id)
            .query_async(&mut conn)
            .await
            .expect("ZSCORE");
        assert!(score.is_some(), "a job that exists is announced");
    }
}

crate::for_each_store!(a_watch_of_an_unknown_job_leaves_nothing);
