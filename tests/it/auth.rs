//! Identities with `auth = "token"`: the authorization matrix, generated
//! from the OpenAPI document (every route × every kind of caller gets the
//! decision this file expects, so a route added without one fails here),
//! and the token API's own rules.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request};
use jobd::config::{AdminToken, AuthMode};
use serde_json::{Value, json};

use crate::app::{App, body_bytes};
use crate::support::{Scratch, Server, StoreKind, cli, cli_env, wait_until};

const ADMIN: &str = "admin-secret-for-tests-0123456789abcdef";

/// What a route does, as this test sees it (written apart from the
/// server's own `auth::policy`, so that the two check each other).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Public,
    Follow,
    Inspect,
    List,
    Queue,
    Metrics,
    /// Submissions (their bodies name the owner).
    Submit,
    /// Cancel and restart of the owner's job.
    Change,
    Work,
    Mint,
    Admin,
    Identity,
}

/// Every route of the document with its kind. A route missing here fails
/// the matrix.
fn expected_kind(method: &str, path: &str) -> Option<Kind> {
    use Kind::*;
    Some(match (method, path) {
        ("get", "/" | "/dashboard/{file}" | "/health" | "/api/v1/openapi.json")
        | ("get", "/api/docs" | "/api/docs/{file}") => Public,
        ("get", "/api/v1/jobs/status/{job_id}")
        | ("get", "/api/v1/jobs/status/{job_id}/poll")
        | ("get", "/api/v1/jobs/status/{job_id}/stream")
        | ("get", "/api/v1/jobs/status/{job_id}/artifacts")
        | ("get", "/api/v1/jobs/status/{job_id}/artifacts/{name}") => Follow,
        ("get", "/api/v1/jobs/status/{job_id}/why")
        | ("get", "/api/v1/jobs/status/{job_id}/logs")
        | ("get", "/api/v1/jobs/status/{job_id}/logs/stream") => Inspect,
        ("get", "/api/v1/jobs") => List,
        ("get", "/api/v1/jobs/queue/stats")
        | ("get", "/api/v1/jobs/queue/stream")
        | ("get", "/api/v1/jobs/queue/throughput")
        | ("get", "/api/v1/jobs/workers") => Queue,
        ("get", "/metrics" | "/api/v1/schedules" | "/api/v1/schedules/{name}") => Metrics,
        ("post", "/api/v1/schedules")
        | ("post", "/api/v1/schedules/{name}/pause")
        | ("post", "/api/v1/schedules/{name}/resume")
        | ("delete", "/api/v1/schedules/{name}") => Admin,
        ("post", "/api/v1/jobs")
        | ("post", "/api/v1/jobs/pipeline")
        | ("post", "/api/v1/jobs/batch") => Submit,
        ("post", "/api/v1/jobs/cancel/{job_id}") | ("post", "/api/v1/jobs/restart/{job_id}") => {
            Change
        }
        ("post", p) if p.starts_with("/api/v1/workers/") => Work,
        ("post", "/api/v1/tokens") => Mint,
        ("get", "/api/v1/tokens") | ("delete", "/api/v1/tokens/{token_id}") => Admin,
        ("get", "/api/v1/audit") => Admin,
        ("get", "/api/v1/me") => Identity,
        _ => return None,
    })
}

/// The callers of the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    NoToken,
    Malformed,
    Unknown,
    Expired,
    Revoked,
    Admin,
    /// The owner of the job the paths name.
    Owner,
    /// Another user.
    OtherUser,
    Viewer,
    Worker,
    /// A job token for another job.
    OtherJobToken,
}

const CALLERS: [Who; 11] = [
    Who::NoToken,
    Who::Malformed,
    Who::Unknown,
    Who::Expired,
    Who::Revoked,
    Who::Admin,
    Who::Owner,
    Who::OtherUser,
    Who::Viewer,
    Who::Worker,
    Who::OtherJobToken,
];

/// The decision: refused 401, refused 403, hidden 404, or let through.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Decision {
    Unauthorized,
    Forbidden,
    Hidden,
    Allowed,
}

fn expected(who: Who, kind: Kind) -> Decision {
    use Decision::*;
    use Kind as K;
    if kind == K::Public {
        return Allowed;
    }
    if kind == K::Identity {
        return if matches!(
            who,
            Who::NoToken | Who::Malformed | Who::Unknown | Who::Expired | Who::Revoked
        ) {
            Unauthorized
        } else {
            Allowed
        };
    }
    match who {
        Who::NoToken | Who::Malformed | Who::Unknown | Who::Expired | Who::Revoked => Unauthorized,
        Who::Admin => Allowed,
        Who::Owner => match kind {
            K::Metrics | K::Work | K::Admin => Forbidden,
            _ => Allowed,
        },
        Who::OtherUser => match kind {
            K::Follow | K::Inspect => Hidden,
            // Cancel and restart of the owner's job; a job token for it.
            K::Change | K::Mint => Hidden,
            // Acting as the owner.
            K::Submit => Forbidden,
            K::Metrics | K::Work | K::Admin => Forbidden,
            _ => Allowed,
        },
        Who::Viewer => match kind {
            K::Submit | K::Change | K::Work | K::Admin => Forbidden,
            _ => Allowed,
        },
        Who::Worker => match kind {
            K::Work => Allowed,
            // A worker sees no job to make a job token for.
            K::Mint => Hidden,
            _ => Forbidden,
        },
        Who::OtherJobToken => match kind {
            K::Follow => Hidden,
            _ => Forbidden,
        },
    }
}

/// The app with `auth = "token"` and the bootstrap admin token.
async fn token_app(kind: StoreKind) -> Option<App> {
    App::with(kind, |settings| {
        settings.auth = AuthMode::Token;
        settings.admin_token = Some(AdminToken::new(ADMIN).unwrap());
    })
    .await
}

/// Sends `method path` with `token` (if any) and a JSON body (if any).
async fn call(
    app: &App,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
        .uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app.send(request.body(body).unwrap()).await;
    let status = response.status().as_u16();
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    if streaming {
        return (status, Value::Null);
    }
    let bytes = body_bytes(response).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Makes a token as the admin; returns (token, token_id).
async fn make_token(app: &App, body: Value) -> (String, String) {
    let (status, made) = call(app, "post", "/api/v1/tokens", Some(ADMIN), Some(body)).await;
    assert_eq!(status, 201, "{made}");
    (
        made["token"].as_str().unwrap().to_owned(),
        made["token_id"].as_str().unwrap().to_owned(),
    )
}

/// Submits a job of `user` with `token`; returns its id.
async fn submit_as(app: &App, token: &str) -> String {
    let (status, job) = call(
        app,
        "post",
        "/api/v1/jobs",
        Some(token),
        Some(json!({"job_type": "noop"})),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    job["job_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_route_decides_for_every_caller() {
    let app = token_app(StoreKind::Sqlite).await.unwrap();
    let (owner, _) = make_token(&app, json!({"user_id": "alice", "role": "user"})).await;
    let (other, _) = make_token(&app, json!({"user_id": "bob", "role": "user"})).await;
    let (viewer, _) = make_token(&app, json!({"user_id": "ops", "role": "viewer"})).await;
    let (worker, _) = make_token(&app, json!({"user_id": "w", "role": "worker"})).await;
    let (expired, _) = make_token(
        &app,
        json!({"user_id": "alice", "role": "admin", "expires_in_seconds": 1}),
    )
    .await;
    let (revoked, revoked_id) =
        make_token(&app, json!({"user_id": "alice", "role": "admin"})).await;
    let (_, doomed_id) = make_token(&app, json!({"user_id": "carol", "role": "user"})).await;
    let job = submit_as(&app, &owner).await;
    let other_job = submit_as(&app, &other).await;
    let (other_job_token, _) = make_token(&app, json!({"job_id": other_job})).await;
    let (status, _) = call(
        &app,
        "delete",
        &format!("/api/v1/tokens/{revoked_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let unknown = format!("jobd_{}_{}", "0".repeat(24), "0".repeat(64));
    wait_until(
        "the short token expires",
        Duration::from_secs(10),
        || async {
            (call(&app, "get", "/api/v1/jobs", Some(&expired), None)
                .await
                .0
                == 401)
                .then_some(())
        },
    )
    .await;

    let token_of = |who: Who| -> Option<String> {
        match who {
            Who::NoToken => None,
            Who::Malformed => Some("not a token".to_owned()),
            Who::Unknown => Some(unknown.clone()),
            Who::Expired => Some(expired.clone()),
            Who::Revoked => Some(revoked.clone()),
            Who::Admin => Some(ADMIN.to_owned()),
            Who::Owner => Some(owner.clone()),
            Who::OtherUser => Some(other.clone()),
            Who::Viewer => Some(viewer.clone()),
            Who::Worker => Some(worker.clone()),
            Who::OtherJobToken => Some(other_job_token.clone()),
        }
    };
    let body_of = |method: &str, path: &str| -> Option<Value> {
        match (method, path) {
            ("post", "/api/v1/jobs") => Some(json!({"job_type": "noop", "user_id": "alice"})),
            ("post", "/api/v1/jobs/pipeline") => Some(json!({
                "documents": [{"name": "a.txt", "text": "One sentence about jobs."}],
                "user_id": "alice"
            })),
            ("post", "/api/v1/jobs/batch") => Some(json!({
                "jobs": [{"job_type": "noop", "user_id": "alice"}]
            })),
            ("post", "/api/v1/tokens") => Some(json!({"job_id": job})),
            ("post", _) => Some(json!({})),
            _ => None,
        }
    };

    let (status, doc) = call(&app, "get", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let mut failures = Vec::new();
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let Some(kind) = expected_kind(method, path) else {
                failures.push(format!("{method} {path}: no expected access in this test"));
                continue;
            };
            let concrete = path
                .replace("{job_id}", &job)
                .replace("{file}", "app.js")
                .replace("{name}", "input.json")
                .replace("{token_id}", &doomed_id);
            let concrete = if concrete.ends_with("/poll") {
                format!("{concrete}?timeout=0")
            } else {
                concrete
            };
            for who in CALLERS {
                let want = expected(who, kind);
                let token = token_of(who);
                let (status, body) = call(
                    &app,
                    method,
                    &concrete,
                    token.as_deref(),
                    body_of(method, path),
                )
                .await;
                tried += 1;
                let got = match (status, body["error"].as_str()) {
                    (401, _) => Decision::Unauthorized,
                    (403, _) => Decision::Forbidden,
                    (404, Some("JobNotFoundError")) => Decision::Hidden,
                    _ => Decision::Allowed,
                };
                if got != want || status >= 500 {
                    failures.push(format!(
                        "{method} {path} as {who:?}: expected {want:?}, got {status} {body}"
                    ));
                }
                if status == 401 {
                    assert_eq!(body["error"], "UnauthorizedError");
                }
                if status == 403 {
                    assert_eq!(body["error"], "ForbiddenError");
                }
            }
        }
    }
    eprintln!("authorization matrix: {tried} requests");
    assert!(tried > 300, "only {tried} requests");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn with_auth_none_no_route_asks_for_a_token() {
    let app = App::on(StoreKind::Sqlite).await.unwrap();
    let (status, _) = app.get("/api/v1/jobs").await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(
            "/api/v1/tokens",
            Some(json!({"user_id": "a", "role": "admin"})),
        )
        .await;
    assert_eq!(status, 403, "no tokens are made with auth = none: {body}");
}

crate::for_each_store!(
    a_user_sees_and_changes_only_its_own_jobs,
    a_job_token_follows_one_job_and_may_travel_in_a_url,
    tokens_are_listed_without_secrets_and_revoked,
);

async fn a_user_sees_and_changes_only_its_own_jobs(kind: StoreKind) {
    let Some(app) = token_app(kind).await else {
        return;
    };
    let (alice, _) = make_token(&app, json!({"user_id": "alice", "role": "user"})).await;
    let (bob, _) = make_token(&app, json!({"user_id": "bob", "role": "user"})).await;
    let mine = submit_as(&app, &alice).await;
    let theirs = submit_as(&app, &bob).await;

    let (status, page) = call(&app, "get", "/api/v1/jobs", Some(&alice), None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mine.as_str()], "only alice's job");
    let filtered = call(&app, "get", "/api/v1/jobs?user_id=bob", Some(&alice), None).await;
    assert_eq!(filtered.0, 403);

    // Another user's job is exactly as absent as one that does not exist.
    let (status, hidden) = call(
        &app,
        "get",
        &format!("/api/v1/jobs/status/{theirs}"),
        Some(&alice),
        None,
    )
    .await;
    let missing = uuid::Uuid::now_v7();
    let (_, absent) = call(
        &app,
        "get",
        &format!("/api/v1/jobs/status/{missing}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        hidden["message"].as_str().unwrap().replace(&theirs, "ID"),
        absent["message"]
            .as_str()
            .unwrap()
            .replace(&missing.to_string(), "ID")
    );
    let (status, _) = call(
        &app,
        "post",
        &format!("/api/v1/jobs/cancel/{theirs}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, job) = call(
        &app,
        "get",
        &format!("/api/v1/jobs/status/{theirs}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(job["status"], "pending", "bob's job was not cancelled");

    // Acting as another user is refused; as itself, accepted.
    let (status, _) = call(
        &app,
        "post",
        "/api/v1/jobs",
        Some(&alice),
        Some(json!({"job_type": "noop", "user_id": "bob"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, job) = call(
        &app,
        "post",
        "/api/v1/jobs",
        Some(&alice),
        Some(json!({"job_type": "noop", "user_id": "alice"})),
    )
    .await;
    assert_eq!((status, job["user_id"].as_str()), (201, Some("alice")));
    // An admin submits on behalf of anyone.
    let (status, job) = call(
        &app,
        "post",
        "/api/v1/jobs",
        Some(ADMIN),
        Some(json!({"job_type": "noop", "user_id": "bob"})),
    )
    .await;
    assert_eq!((status, job["user_id"].as_str()), (201, Some("bob")));
}

async fn a_job_token_follows_one_job_and_may_travel_in_a_url(kind: StoreKind) {
    let Some(app) = token_app(kind).await else {
        return;
    };
    let (alice, _) = make_token(&app, json!({"user_id": "alice", "role": "user"})).await;
    let job = submit_as(&app, &alice).await;
    let (status, made) = call(
        &app,
        "post",
        "/api/v1/tokens",
        Some(&alice),
        Some(json!({"job_id": job})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["role"].as_str(), made["user_id"].as_str()),
        (Some("viewer"), Some("alice"))
    );
    assert!(
        made["expires_at"].is_string(),
        "a job token expires by default"
    );
    let job_token = made["token"].as_str().unwrap();

    let status_path = format!("/api/v1/jobs/status/{job}");
    assert_eq!(
        call(&app, "get", &status_path, Some(job_token), None)
            .await
            .0,
        200
    );
    let in_url = format!("/api/v1/jobs/status/{job}/poll?timeout=0&access_token={job_token}");
    assert_eq!(call(&app, "get", &in_url, None, None).await.0, 200);
    let stream = format!("/api/v1/jobs/status/{job}/stream?access_token={job_token}");
    assert_eq!(call(&app, "get", &stream, None, None).await.0, 200);
    // Not a user's token in a URL, and not a job token elsewhere.
    let user_in_url = format!("/api/v1/jobs/status/{job}?access_token={alice}");
    assert_eq!(call(&app, "get", &user_in_url, None, None).await.0, 401);
    assert_eq!(
        call(&app, "get", "/api/v1/jobs", Some(job_token), None)
            .await
            .0,
        403
    );
    // Alice may not make other tokens.
    let (status, _) = call(
        &app,
        "post",
        "/api/v1/tokens",
        Some(&alice),
        Some(json!({"user_id": "alice", "role": "admin"})),
    )
    .await;
    assert_eq!(status, 403);
}

async fn tokens_are_listed_without_secrets_and_revoked(kind: StoreKind) {
    let Some(app) = token_app(kind).await else {
        return;
    };
    let (viewer, id) = make_token(&app, json!({"user_id": "ops", "role": "viewer"})).await;
    assert_eq!(
        call(&app, "get", "/api/v1/jobs", Some(&viewer), None)
            .await
            .0,
        200
    );
    let (status, list) = call(&app, "get", "/api/v1/tokens", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(text.contains(&id));
    assert!(!text.contains(&viewer[20..]), "no secret in the listing");
    let listed: BTreeMap<String, Value> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["token_id"].as_str().unwrap().to_owned(), t.clone()))
        .collect();
    assert_eq!(listed[&id]["role"], "viewer");
    assert!(listed[&id]["revoked_at"].is_null());

    let (status, revoked) = call(
        &app,
        "delete",
        &format!("/api/v1/tokens/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(
        call(&app, "get", "/api/v1/jobs", Some(&viewer), None)
            .await
            .0,
        401
    );
    let (status, body) = call(&app, "delete", "/api/v1/tokens/nope", Some(ADMIN), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("TokenNotFoundError"))
    );
}

/// Two API nodes on one Redis, tokens managed with the CLI on one: a token
/// revoked there is refused by the other within a second.
#[tokio::test]
async fn a_revocation_on_one_node_is_refused_by_the_other_within_a_second() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    let flags: Vec<String> = ["--auth", "token", "--workers", "0"]
        .map(String::from)
        .to_vec();
    let env = [("JOBD_ADMIN_TOKEN", ADMIN)];
    let a = Server::serve_env(&scratch, &flags, &env);
    let b = Server::serve_env(&scratch, &flags, &env);
    let admin_env = [("JOBD_TOKEN", ADMIN)];

    let (code, out, err) = cli_env(
        &a.url,
        &["token", "create", "--user", "alice", "--role", "user"],
        &admin_env,
    );
    assert_eq!(code, 0, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    let token = made["token"].as_str().unwrap().to_owned();
    let id = made["token_id"].as_str().unwrap().to_owned();
    let (code, out, _) = cli_env(&a.url, &["token", "list"], &admin_env);
    assert_eq!(code, 0);
    assert!(out.contains(&id) && !out.contains(&token[20..]));
    // The CLI's other commands send the token too.
    let (code, _, err) = cli_env(&b.url, &["list"], &[("JOBD_TOKEN", &token)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = cli(&b.url, &["list"]);
    assert_ne!(code, 0, "no token, no listing");

    let on_b = || async {
        b.http
            .get(b.at("/api/v1/jobs"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(on_b().await, 200, "b knows the token (and caches it)");
    let (code, _, err) = cli_env(&a.url, &["token", "revoke", &id], &admin_env);
    assert_eq!(code, 0, "{err}");
    let revoked = Instant::now();
    wait_until(
        "b refuses the revoked token",
        Duration::from_secs(5),
        || async { (on_b().await == 401).then_some(()) },
    )
    .await;
    let took = revoked.elapsed();
    assert!(took < Duration::from_secs(1), "b accepted it for {took:?}");
}

/// Beyond loopback without identities, `serve` refuses to start and says
/// how to go on; it never binds.
#[tokio::test]
async fn serving_beyond_loopback_needs_auth_token_or_an_explicit_none() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(crate::support::jobd_bin())
        .args([
            "serve",
            "--bind",
            "0.0.0.0:0",
            "--workers",
            "0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env_remove("JOBD_AUTH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("without authentication") && stderr.contains("--auth none"),
        "{stderr}"
    );
}
