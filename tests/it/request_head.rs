//! The edges of a request that hyper parses before any handler runs, over
//! raw TCP against a real `jobd`: a URI over 8 KiB, more than 100 header
//! fields, a head over 64 KiB are answered in the error shape (before,
//! hyper answered the field count with an empty 431 and let the others
//! through); what hyper still answers itself is pinned down too. Then the
//! path segments and the announced body size, in-process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;

use crate::app::{App, app, body_bytes};
use crate::support::{Scratch, Server, StoreKind};

/// One answer read off a socket: status, the head as text, the body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` when it is not).
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts the error shape with `status` and `name`.
    fn assert_error(&self, status: u16, name: &str) {
        let body = self.json();
        assert_eq!(
            (self.status, body["error"].as_str()),
            (status, Some(name)),
            "{}\n{}",
            self.head,
            String::from_utf8_lossy(&self.body)
        );
        assert!(body["message"].is_string(), "{body}");
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{}",
            self.head
        );
    }
}

/// Sends `request` on a fresh connection and reads one answer: the head,
/// then `Content-Length` bytes (or up to the close), within 10 s.
fn exchange(server: &Server, request: &[u8]) -> Answer {
    let address = server.url.strip_prefix("http://").expect("http url");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // hyper may answer and close before it has read all of a big head.
    let _ = stream.write_all(request);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        assert!(Instant::now() < deadline, "no answer within 10 s");
        match stream.read(&mut buffer) {
            Ok(0) => panic!(
                "closed without an answer: {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
            Err(e) => panic!("no answer: {e}"),
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = seen[head_end..].to_vec();
    while body.len() < length && Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buffer[..n]),
        }
    }
    Answer { status, head, body }
}

/// `GET path` with `fields` extra header lines.
fn get_with(path: &str, fields: &[String]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    for field in fields {
        request.push_str(field);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

#[tokio::test]
async fn heads_over_the_limits_are_answered_in_the_error_shape() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve(&scratch, &[]);
    let fields = |n: usize| -> Vec<String> { (0..n).map(|i| format!("X-Field-{i}: v")).collect() };
    tokio::task::spawn_blocking(move || {
        // Within the limits: answered as usual.
        let path = format!("/health?{}", "a".repeat(8000));
        assert_eq!(exchange(&server, &get_with(&path, &[])).status, 200);
        assert_eq!(
            exchange(&server, &get_with("/health", &fields(99))).status,
            200
        );

        // A URI over 8 KiB (before: 200).
        let path = format!("/health?{}", "a".repeat(20_000));
        exchange(&server, &get_with(&path, &[])).assert_error(414, "UriTooLongError");
        // More than 100 header fields (before: hyper's own 431, empty).
        exchange(&server, &get_with("/health", &fields(150)))
            .assert_error(431, "HeadersTooLargeError");
        exchange(&server, &get_with("/health", &fields(900)))
            .assert_error(431, "HeadersTooLargeError");
        // A head over 64 KiB (before: 200).
        let big = vec![format!("X-Big: {}", "a".repeat(100_000))];
        exchange(&server, &get_with("/health", &big)).assert_error(431, "HeadersTooLargeError");
        // The same on a route with a body, before the body is read.
        let mut post = get_with("/api/v1/jobs", &fields(150));
        post.splice(0..3, b"POST".iter().copied());
        exchange(&server, &post).assert_error(431, "HeadersTooLargeError");
    })
    .await
    .expect("raw exchanges");
}

/// What hyper answers itself, before any of jobd's code sees the request,
/// with an empty body and no hook to shape it: bytes that are not an
/// HTTP/1 request, a URI over 65,534 bytes, a head over 256 KiB or over
/// 1,000 fields. (Before, the head's limit was hyper's read buffer, which
/// one fast read can overrun: a 1 MB head was sometimes served.)
#[tokio::test]
async fn what_hyper_answers_itself() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("SQLite scratch");
    let server = Server::serve(&scratch, &[]);
    tokio::task::spawn_blocking(move || {
        let fields = |n: usize| -> Vec<String> { (0..n).map(|i| format!("X-F{i}: v")).collect() };
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("not HTTP", b"HELLO\r\n\r\n".to_vec(), 400),
            (
                "a header line without a colon",
                b"GET /health HTTP/1.1\r\nHost jobd\r\n\r\n".to_vec(),
                400,
            ),
            (
                "two Content-Lengths",
                b"POST /api/v1/jobs HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}"
                    .to_vec(),
                400,
            ),
            (
                "a URI over 65,534 bytes",
                get_with(&format!("/health?{}", "a".repeat(70_000)), &[]),
                414,
            ),
            (
                "a head over 256 KiB",
                get_with("/health", &[format!("X-Big: {}", "a".repeat(300_000))]),
                431,
            ),
            (
                "a head of 1 MB",
                get_with("/health", &[format!("X-Big: {}", "a".repeat(1_000_000))]),
                431,
            ),
            (
                "over 1,000 header fields",
                get_with("/health", &fields(1_001)),
                431,
            ),
        ];
        for (case, request, status) in cases {
            let answer = exchange(&server, &request);
            assert_eq!(
                (answer.status, answer.body.len()),
                (status, 0),
                "{case}: {}",
                answer.head
            );
        }
    })
    .await
    .expect("raw exchanges");
}

#[tokio::test]
async fn path_segments_that_do_not_decode_are_a_json_400() {
    let app = app().await;
    for path in ["/dashboard/%FF", "/api/docs/%FF", "/api/v1/jobs/status/%FF"] {
        let (status, body) = app.get(path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("ValidationError")),
            "{path}: {body}"
        );
    }
}

/// A body whose `Content-Length` is over the limit is refused at once
/// (before: the server waited for the body until the read time-out and
/// answered 408).
#[tokio::test]
async fn a_body_announced_over_the_limit_is_a_413_at_once() {
    let app = App::with(StoreKind::Sqlite, |s| {
        s.http_read_timeout = Duration::from_secs(60);
    })
    .await
    .expect("app");
    for path in ["/api/v1/jobs", "/api/v1/jobs/pipeline"] {
        let request = Request::post(path)
            .header("content-length", "99999999999")
            .body(Body::from_stream(futures::stream::pending::<
                Result<axum::body::Bytes, std::io::Error>,
            >()))
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(5), app.send(request))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within 5 s"));
        assert_eq!(response.status(), 413, "{path}");
        let body: Value = serde_json::from_slice(&body_bytes(response).await).expect("JSON");
        assert_eq!(body["error"], "PayloadTooLargeError", "{path}: {body}");
    }
}
