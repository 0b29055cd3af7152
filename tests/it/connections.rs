//! Connections cannot hold the server: idle, half-sent and slow clients
//! are timed out, connections stay below the open-file limit, and the
//! process raises that limit as far as it may.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::app::{App, body_bytes};
use crate::support::{Scratch, Server, StoreKind, wait_until};

fn host_port(server: &Server) -> String {
    server
        .url
        .strip_prefix("http://")
        .expect("http url")
        .to_owned()
}

/// The (soft, hard) open-file limits of a process, from /proc.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open-file line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

/// With the process limited to 256 open files, 300 clients that connect
/// and send nothing or half a request do not lock out the others: health
/// checks and submissions are answered while they are held open (before:
/// the server ran out of descriptors, "accept error: Too many open files",
/// and answered nobody for as long as they stayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_do_not_lock_out_clients() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve_after(
        &scratch,
        "ulimit -n 256",
        &["--http-read-timeout-seconds".into(), "1".into()],
    );
    assert_eq!(open_file_limits(server.pid()).0, "256");
    let address = host_port(&server);
    let mut held = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(&address).expect("connect");
        if i % 2 == 1 {
            stream
                .write_all(b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: app")
                .expect("half a request");
        }
        held.push(stream);
    }

    let started = Instant::now();
    wait_until("GET /health answers", Duration::from_secs(30), || async {
        let response = server
            .http
            .get(server.at("/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let id = server.submit_id("sleep", json!({"seconds": 0})).await;
    assert!(!id.is_empty());
    eprintln!(
        "health and a submission answered {:.1} s after 300 idle and half-sent connections",
        started.elapsed().as_secs_f64()
    );
    drop(held);
}

/// A kept-alive connection that sends nothing more after a response is
/// closed by the server once the read time-out has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_read_timeout() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve(
        &scratch,
        &["--http-read-timeout-seconds".into(), "1".into()],
    );
    let address = host_port(&server);
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("request");
        // Read the response, then wait for the end of the stream.
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        let started = Instant::now();
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return Some((seen, started.elapsed())),
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
                Err(_) => return None, // 10 s without the server closing
            }
        }
    })
    .await
    .expect("reader");
    let (response, after) = closed.expect("the server closed the idle connection within 10 s");
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
}

/// The process raises its soft open-file limit to the hard one.
#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve_after(&scratch, "ulimit -S -n 300 && ulimit -H -n 4000", &[]);
    assert_eq!(
        open_file_limits(server.pid()),
        ("4000".to_owned(), "4000".to_owned())
    );
}

/// A request body that stops arriving is answered 408 with the error
/// shape once the read time-out has passed, instead of holding the
/// request open forever.
#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408() {
    let app = App::with(StoreKind::Sqlite, |s| {
        s.http_read_timeout = Duration::from_millis(200);
    })
    .await
    .expect("app");
    let first = futures::stream::once(async {
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"job_type\":"))
    });
    let body = Body::from_stream(futures::StreamExt::chain(first, futures::stream::pending()));
    let request = Request::post("/api/v1/jobs")
        .header("content-type", "application/json")
        .body(body)
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), app.send(request))
        .await
        .expect("answered within 10 s");
    assert_eq!(response.status(), 408);
    let body: Value = serde_json::from_slice(&body_bytes(response).await).expect("JSON error");
    assert_eq!(body["error"], "RequestTimeoutError", "{body}");
}

/// At the connection cap, a new client is served at once: the connection
/// that has waited longest without a request in progress (idle or
/// half-sent) gives way, long before the read time-out would close it,
/// while a connection with a request in progress (an SSE stream) is kept
/// (before: the new client waited in the backlog for the time-out, and
/// clients that kept reopening their idle connections locked it out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_longest_waiting_idle_connection_gives_way() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve(
        &scratch,
        &[
            "--max-connections".into(),
            "4".into(),
            "--http-read-timeout-seconds".into(),
            "60".into(),
        ],
    );
    let id = server
        .submit_id("sleep", json!({"seconds": 2, "steps": 4}))
        .await;
    let mut stream = server
        .http
        .get(server.at(&format!("/api/v1/jobs/status/{id}/stream")))
        .send()
        .await
        .expect("stream")
        .bytes_stream();
    let address = host_port(&server);
    let mut held = Vec::new();
    for i in 0..3 {
        let mut idle = TcpStream::connect(&address).expect("connect");
        if i == 1 {
            idle.write_all(b"GET /health HTTP/1.1\r\nHost: jo")
                .expect("half a request");
        }
        held.push(idle);
    }
    // One fresh connection after another, each past the cap.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for _ in 0..6 {
        let response = fresh
            .get(server.at("/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("/health answered within 5 s at the cap");
        assert_eq!(response.status(), 200);
    }
    // The stream was kept: it reaches the job's end.
    let mut seen = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
            if seen.contains("event: job_complete") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ended, Ok(true), "stream: {seen}");
    drop(held);
}
