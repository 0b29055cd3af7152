//! What a browser may do (`api::guard`), in-process on the real router:
//! cross-site mutations and foreign `Host`s are 403 `ForbiddenError` and
//! change nothing, while curl-like requests keep working; every answer
//! carries the security headers; CORS is off unless an origin is listed;
//! and no token reaches a log line or an error message.

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use jobd::config::Settings;
use serde_json::{Value, json};

use crate::app::{App, Logs, app, body_bytes};
use crate::support::StoreKind;

/// The server's own address in these requests (the in-process app's
/// settings bind 127.0.0.1:8000).
const OWN_HOST: &str = "127.0.0.1:8000";

const SUBMISSION: &str = r#"{"job_type": "noop"}"#;

/// Sends `method path` with `headers` and `body`; the status, the headers
/// and the body as JSON (`Null` when it is not JSON).
async fn send(
    app: &App,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .send(request.body(Body::from(body.to_owned())).expect("request"))
        .await;
    let status = response.status().as_u16();
    let head = response.headers().clone();
    let bytes = body_bytes(response).await;
    (
        status,
        head,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A browser's form or `text/plain` fetch: how a page of `origin` submits.
async fn submit_from(app: &App, origin: &str, host: &str) -> (u16, Value) {
    let headers = [
        ("origin", origin),
        ("host", host),
        ("content-type", "text/plain;charset=UTF-8"),
    ];
    let (status, _, body) = send(app, "POST", "/api/v1/jobs", &headers, SUBMISSION).await;
    (status, body)
}

fn assert_forbidden(status: u16, body: &Value) {
    assert_eq!(
        (status, &body["error"]),
        (403, &json!("ForbiddenError")),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn job_count(app: &App) -> usize {
    let (status, list) = app.get("/api/v1/jobs").await;
    assert_eq!(status, 200, "{list}");
    list["jobs"].as_array().expect("jobs").len()
}

async fn app_with(adjust: impl FnOnce(&mut Settings)) -> App {
    App::with(StoreKind::Sqlite, adjust)
        .await
        .expect("SQLite is always available")
}

#[tokio::test]
async fn a_cross_origin_submission_or_cancel_is_refused_and_changes_nothing() {
    let app = app().await;
    let (status, body) = submit_from(&app, "https://evil.example", OWN_HOST).await;
    assert_forbidden(status, &body);
    // `null`: a sandboxed frame, a file, a redirect.
    let (status, body) = submit_from(&app, "null", OWN_HOST).await;
    assert_forbidden(status, &body);
    // Another port of the same machine is another origin.
    let (status, body) = submit_from(&app, "http://127.0.0.1:3000", OWN_HOST).await;
    assert_forbidden(status, &body);
    // No Origin, but the browser says cross-site.
    let headers = [("host", OWN_HOST), ("sec-fetch-site", "cross-site")];
    let (status, _, body) = send(&app, "POST", "/api/v1/jobs", &headers, SUBMISSION).await;
    assert_forbidden(status, &body);
    assert_eq!(
        job_count(&app).await,
        0,
        "a refused submission stored a job"
    );

    let job = app
        .submit(json!({"job_type": "sleep", "parameters": {"seconds": 60}}))
        .await;
    let id = job["job_id"].as_str().expect("id");
    for path in [
        format!("/api/v1/jobs/cancel/{id}"),
        format!("/api/v1/jobs/restart/{id}"),
    ] {
        let headers = [("origin", "https://evil.example"), ("host", OWN_HOST)];
        let (status, _, body) = send(&app, "POST", &path, &headers, "").await;
        assert_forbidden(status, &body);
    }
    let (_, after) = app.get(&format!("/api/v1/jobs/status/{id}")).await;
    assert_eq!(after["status"], "pending", "{after}");
}

#[tokio::test]
async fn same_origin_and_curl_like_submissions_pass() {
    let app = app().await;
    // The dashboard: its page's origin is the server's.
    for (origin, host) in [
        ("http://127.0.0.1:8000", OWN_HOST),
        ("http://localhost:8000", "localhost:8000"),
        ("http://LOCALHOST:8000", "localhost:8000"),
        ("http://localhost", "localhost:80"),
    ] {
        let (status, body) = submit_from(&app, origin, host).await;
        assert_eq!(status, 201, "{origin} on {host}: {body}");
    }
    // curl -d: form-encoded type, no Origin; and a text/plain body.
    for content_type in ["application/x-www-form-urlencoded", "text/plain"] {
        let headers = [("host", OWN_HOST), ("content-type", content_type)];
        let (status, _, body) = send(&app, "POST", "/api/v1/jobs", &headers, SUBMISSION).await;
        assert_eq!(status, 201, "{content_type}: {body}");
    }
    // A browser's own navigation or same-origin request without Origin.
    for site in ["same-origin", "none"] {
        let headers = [("host", OWN_HOST), ("sec-fetch-site", site)];
        let (status, _, body) = send(&app, "POST", "/api/v1/jobs", &headers, SUBMISSION).await;
        assert_eq!(status, 201, "{site}: {body}");
    }
    // Reads are not mutations: a cross-origin GET is answered (the browser
    // keeps its answer from the page without CORS).
    let headers = [("origin", "https://evil.example"), ("host", OWN_HOST)];
    let (status, _, _) = send(&app, "GET", "/api/v1/jobs", &headers, "").await;
    assert_eq!(status, 200);
    assert_eq!(job_count(&app).await, 8);
}

#[tokio::test]
async fn an_allowed_origin_may_submit_even_cross_site() {
    let app = app_with(|s| s.allowed_origins = vec!["https://app.example.com".into()]).await;
    let headers = [
        ("origin", "https://app.example.com"),
        ("host", OWN_HOST),
        ("sec-fetch-site", "cross-site"),
        ("content-type", "application/json"),
    ];
    let (status, _, body) = send(&app, "POST", "/api/v1/jobs", &headers, SUBMISSION).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = submit_from(&app, "https://other.example.com", OWN_HOST).await;
    assert_forbidden(status, &body);
    // The origin, not a prefix of it.
    let (status, body) = submit_from(&app, "https://app.example.com.evil.example", OWN_HOST).await;
    assert_forbidden(status, &body);
    assert_eq!(job_count(&app).await, 1);
}

#[tokio::test]
async fn a_loopback_server_answers_only_loopback_host_names() {
    let app = app().await;
    for host in [
        "evil.example",
        "evil.example:8000",
        "localhost.evil.example",
        "10.0.0.1:8000",
    ] {
        let headers = [("host", host)];
        let (status, _, body) = send(&app, "GET", "/api/v1/jobs", &headers, "").await;
        assert_forbidden(status, &body);
        let (status, _, body) = send(&app, "GET", "/health", &headers, "").await;
        assert_forbidden(status, &body);
        let (status, _, body) = send(&app, "POST", "/api/v1/jobs", &headers, SUBMISSION).await;
        assert_forbidden(status, &body);
    }
    assert_eq!(
        job_count(&app).await,
        0,
        "a refused submission stored a job"
    );
    for host in [
        "localhost",
        "localhost:8000",
        "127.0.0.1:8000",
        "127.0.0.2",
        "[::1]:8000",
        "dash.localhost:8000",
    ] {
        let (status, _, body) = send(&app, "GET", "/api/v1/jobs", &[("host", host)], "").await;
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[tokio::test]
async fn allowed_hosts_opens_a_loopback_server_to_other_names() {
    let app = app_with(|s| {
        s.allowed_hosts = Some(vec!["jobs.example.com".into(), "*.internal.example".into()])
    })
    .await;
    for host in [
        "jobs.example.com",
        "JOBS.example.com:8443",
        "a.internal.example",
    ] {
        let (status, _, body) = send(&app, "GET", "/api/v1/jobs", &[("host", host)], "").await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    for host in ["evil.example", "internal.example", "xjobs.example.com"] {
        let (status, _, body) = send(&app, "GET", "/api/v1/jobs", &[("host", host)], "").await;
        assert_forbidden(status, &body);
    }
    let any = app_with(|s| s.allowed_hosts = Some(vec!["*".into()])).await;
    let (status, _, body) =
        send(&any, "GET", "/api/v1/jobs", &[("host", "evil.example")], "").await;
    assert_eq!(status, 200, "{body}");
    // Bound to every address: any host, unless allowed_hosts says otherwise.
    let open = app_with(|s| s.bind = "0.0.0.0:8000".parse().expect("address")).await;
    let (status, _, body) = send(
        &open,
        "GET",
        "/api/v1/jobs",
        &[("host", "jobs.example.com")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = app().await;
    let paths = [
        ("GET", "/"),
        ("GET", "/dashboard/app.js"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/docs"),
        ("GET", "/api/docs/index.html"),
        ("GET", "/api/docs/"),
        ("GET", "/no/such/route"),
        ("POST", "/api/v1/jobs"),
    ];
    for (method, path) in paths {
        let (status, headers, _) = send(&app, method, path, &[], "").await;
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self';",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
            "form-action 'self'",
        ] {
            assert!(
                csp.contains(directive),
                "{method} {path} ({status}): CSP {csp:?}"
            );
        }
        assert!(!csp.contains("unsafe"), "{method} {path}: {csp}");
        assert_eq!(
            header("x-content-type-options"),
            "nosniff",
            "{method} {path}"
        );
        assert_eq!(header("referrer-policy"), "no-referrer", "{method} {path}");
        assert_eq!(header("x-frame-options"), "DENY", "{method} {path}");
    }
    // Refusals too.
    let (status, headers, _) = send(&app, "GET", "/", &[("host", "evil.example")], "").await;
    assert_eq!(status, 403);
    assert!(headers.contains_key("content-security-policy"));
}

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

/// A browser's preflight for a POST with a bearer token from `origin`.
async fn preflight(app: &App, origin: &str) -> (u16, HeaderMap) {
    let headers = [
        ("origin", origin),
        ("host", OWN_HOST),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type",
        ),
    ];
    let (status, head, _) = send(app, "OPTIONS", "/api/v1/jobs", &headers, "").await;
    (status, head)
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = app().await;
    let headers = [("origin", "https://app.example.com"), ("host", OWN_HOST)];
    let (status, head, _) = send(&app, "GET", "/api/v1/jobs", &headers, "").await;
    assert_eq!(status, 200);
    assert_eq!(cors_headers(&head), Vec::<String>::new());
    let (status, head) = preflight(&app, "https://app.example.com").await;
    assert_eq!(status, 405, "a preflight is an OPTIONS like any other");
    assert_eq!(cors_headers(&head), Vec::<String>::new());
}

#[tokio::test]
async fn cors_answers_the_listed_origins_only() {
    let app = app_with(|s| s.cors_allowed_origins = vec!["https://app.example.com".into()]).await;
    let (status, head) = preflight(&app, "https://app.example.com").await;
    assert!((200..300).contains(&status), "preflight answered {status}");
    let header = |name: &str| {
        head.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    assert_eq!(
        header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(
        header("access-control-allow-methods").contains("post"),
        "{head:?}"
    );
    let allowed = header("access-control-allow-headers");
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{head:?}"
    );

    let headers = [
        ("origin", "https://app.example.com"),
        ("host", OWN_HOST),
        ("sec-fetch-site", "cross-site"),
        ("content-type", "application/json"),
    ];
    let (status, head, body) = send(&app, "POST", "/api/v1/jobs", &headers, SUBMISSION).await;
    assert_eq!(status, 201, "a CORS origin may submit: {body}");
    assert_eq!(
        head.get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );

    let (status, head) = preflight(&app, "https://evil.example").await;
    assert_eq!((status, cors_headers(&head)), (405, Vec::<String>::new()));
    let headers = [("origin", "https://evil.example"), ("host", OWN_HOST)];
    let (status, head, _) = send(&app, "GET", "/api/v1/jobs", &headers, "").await;
    assert_eq!((status, cors_headers(&head)), (200, Vec::<String>::new()));
}

/// A token in `Authorization` or in a stream's `access_token` query (what
/// a browser's `EventSource` can send) appears in no log line, at any
/// level, and in no answer.
#[tokio::test]
async fn no_token_is_logged_or_answered() {
    const SECRET: &str = "jbd_s3cret_token_value";
    const HEADER_SECRET: &str = "jbd_h3ader_token_value";
    let app = app().await;
    let logs = Logs::capture_at(tracing::Level::TRACE);
    let id = uuid::Uuid::now_v7();
    let bearer = format!("Bearer {HEADER_SECRET}");
    let requests = [
        (
            "GET",
            format!("/api/v1/jobs/status/{id}/stream?access_token={SECRET}"),
        ),
        (
            "GET",
            format!("/api/v1/jobs/status/{id}/logs/stream?after=0&access_token={SECRET}"),
        ),
        ("GET", format!("/api/v1/jobs?access_token={SECRET}")),
        (
            "GET",
            format!("/api/v1/jobs/status/not-a-uuid?access%5Ftoken={SECRET}"),
        ),
        ("POST", format!("/api/v1/jobs?token={SECRET}")),
    ];
    let mut answers = String::new();
    for (method, path) in &requests {
        let headers = [("authorization", bearer.as_str()), ("host", OWN_HOST)];
        let (status, _, body) = send(&app, method, path, &headers, "{}").await;
        assert!(
            (400..500).contains(&status),
            "{method} {path}: {status} {body}"
        );
        answers.push_str(&body.to_string());
    }
    let lines = logs.lines();
    for secret in [SECRET, HEADER_SECRET] {
        let leaked: Vec<&String> = lines.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaked.is_empty(), "{secret} logged: {leaked:#?}");
        assert!(!answers.contains(secret), "{secret} answered: {answers}");
    }
    assert!(
        lines.iter().any(|l| l.contains("access_token=REDACTED")),
        "the requests were not traced: {lines:#?}"
    );
}
