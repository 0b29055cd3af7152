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

/// The server's resident memory, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Opens an SSE stream of `id` on a connection of its own and returns it
/// once the first event arrived.
async fn open_stream(addr: &str, id: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /api/v1/jobs/status/{id}/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !String::from_utf8_lossy(&seen).contains("job_update") {
        let n = stream.read(&mut buf).await.expect("read the stream");
        assert!(
            n > 0,
            "the stream closed: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    stream
}

/// Memory that thousands of SSE streams took is given back to the system
/// once they close (glibc kept it for good before `malloc_trim`).
#[tokio::test]
async fn memory_the_streams_took_comes_back_after_they_close() {
    const STREAMS: usize = 2_000;
    let Some(scratch) = Scratch::new(StoreKind::Sqlite) else {
        return;
    };
    // This test holds a descriptor per stream too.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    if limit.rlim_cur < 2 * STREAMS as u64 + 256 {
        eprintln!("\n!!! SKIPPING: the open-file limit is below {STREAMS} streams !!!\n");
        return;
    }
    let server = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let mut ids = Vec::new();
    for n in 0..100 {
        ids.push(server.submit_id("noop", json!({ "n": n })).await);
    }
    let addr = server.url.trim_start_matches("http://").to_owned();
    let pid = server.pid();
    let baseline = resident_kib(pid);
    let mut streams = Vec::new();
    for batch in (0..STREAMS).collect::<Vec<_>>().chunks(250) {
        let opening = batch
            .iter()
            .map(|n| open_stream(&addr, &ids[n % ids.len()]));
        let opened =
            tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(opening))
                .await
                .expect("the streams open");
        streams.extend(opened);
    }
    let peak = resident_kib(pid);
    let taken = peak.saturating_sub(baseline);
    assert!(taken > 8 * 1024, "{STREAMS} streams took only {taken} KiB");
    drop(streams);
    // Half of it back within 30 s (it is given back every 10 s).
    wait_until(
        "the memory the streams took to come back",
        Duration::from_secs(30),
        || async { (resident_kib(pid) < baseline + taken / 2).then_some(()) },
    )
    .await;
}
