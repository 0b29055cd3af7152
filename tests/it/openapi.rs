//! The OpenAPI document against the server: the document served is the one
//! generated from the code; every documented operation is served and
//! answers with a documented status; nothing undocumented is served; error
//! bodies validate against the document (these in-process, once); and real
//! responses of a running `jobd` on each store (JSON and SSE event data)
//! validate against the document's schemas.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use axum::body::Body;
use axum::http::Request;

use crate::app::{App, app, body_bytes};
use crate::support::{Scratch, Server, StoreKind, wait_until};

/// Methods probed on every documented path.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// Paths the server must not serve (each is near a real route).
const UNDOCUMENTED: [&str; 8] = [
    "/api/v1",
    "/api/v1/jobs/unknown",
    "/api/v1/jobs/status",
    "/api/v1/jobs/status/01a222c9-0000-7000-8000-000000000000/other",
    "/api/v1/jobs/queue",
    "/dashboard",
    "/api/v1/openapi.yaml",
    "/metrics/extra",
];

/// The routes the README documents, each of which must be in the document.
const README_ROUTES: [(&str, &str); 13] = [
    ("post", "/api/v1/jobs"),
    ("post", "/api/v1/jobs/pipeline"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/status/{job_id}"),
    ("get", "/api/v1/jobs/status/{job_id}/poll"),
    ("get", "/api/v1/jobs/status/{job_id}/stream"),
    ("get", "/api/v1/jobs/queue/stats"),
    ("get", "/api/v1/jobs/workers"),
    ("post", "/api/v1/jobs/cancel/{job_id}"),
    ("post", "/api/v1/jobs/restart/{job_id}"),
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
];

/// The path with its parameters filled in (and a long-poll that answers
/// at once).
fn concrete(path: &str, job_id: &str) -> String {
    let file = if path.starts_with("/api/docs") {
        "index.html"
    } else {
        "app.js"
    };
    let url = path.replace("{job_id}", job_id).replace("{file}", file);
    if url.ends_with("/poll") {
        url + "?timeout=0"
    } else {
        url
    }
}

/// True when the answer is the router's own "no route" or "no method".
fn is_fallback(status: u16, body: &Value) -> bool {
    (status == 404 && body["error"] == "NotFoundError")
        || (status == 405 && body["error"] == "MethodNotAllowedError")
}

/// `method path` in-process, with a JSON body or none; returns the status,
/// the content type and the body as JSON (`Null` when it is not JSON, or
/// for an event stream, whose head is the answer).
async fn send(app: &App, method: &str, path: &str, body: Option<Value>) -> (u16, String, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let response = app.send(request).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type.starts_with("text/event-stream") {
        return (status, content_type, Value::Null);
    }
    let bytes = body_bytes(response).await;
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_document_and_the_router_list_the_same_routes() {
    let app = app().await;
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(
        doc,
        serde_json::to_value(jobd::api::openapi::openapi()).unwrap(),
        "the served document is the one generated from the code"
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    // Tools key operations by their ids (schemathesis' inferred links):
    // two operations with one id are a broken document.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .filter_map(|op| op.get("operationId").and_then(Value::as_str))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds are unique: {ids:?}");
    for (method, path) in README_ROUTES {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is missing from the document"
        );
    }

    // A pending job (no workers) for the {job_id} routes: cancel makes it
    // cancelled, after which restart applies.
    let job = app.submit(json!({"job_type": "noop"})).await;
    let job_id = job["job_id"].as_str().expect("job_id").to_owned();
    let mut operations = 0;
    for (path, item) in paths {
        let documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        let url = concrete(path, &job_id);
        for method in METHODS {
            let body =
                (method == "POST" && path == "/api/v1/jobs").then(|| json!({"job_type": "noop"}));
            let (status, _, answer) = send(&app, method, &url, body).await;
            if documented.iter().any(|m| m == method) {
                operations += 1;
                assert!(
                    !is_fallback(status, &answer),
                    "documented {method} {path} is not served: {status} {answer}"
                );
                let responses = &item[method.to_lowercase()]["responses"];
                assert!(
                    responses.get(status.to_string()).is_some(),
                    "{method} {path} answered {status}, which the document does not list: {answer}"
                );
            } else {
                assert_eq!(
                    (status, answer["error"].as_str()),
                    (405, Some("MethodNotAllowedError")),
                    "{method} {path} is served but not documented"
                );
            }
        }
    }
    assert!(operations >= 20, "only {operations} operations documented");
    for path in UNDOCUMENTED {
        for method in ["GET", "POST"] {
            let (status, _, answer) = send(&app, method, path, None).await;
            assert_eq!(
                (status, answer["error"].as_str()),
                (404, Some("NotFoundError")),
                "{method} {path} is served but not documented"
            );
        }
    }
}

/// True when the media type `documented` (a key of a response's
/// `content`) covers the `Content-Type` answered: the same type, and every
/// parameter it names (such as `version=0.0.4`) present.
fn covers(documented: &str, answered: &str) -> bool {
    let parts = |t: &str| -> Vec<String> {
        t.split(';')
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let (documented, answered) = (parts(documented), parts(answered));
    !documented.is_empty()
        && documented.first() == answered.first()
        && documented[1..].iter().all(|p| answered[1..].contains(p))
}

/// Every answer's `Content-Type` is one the document lists for its status
/// (an answer without a body has none, and the document lists none):
/// every dashboard asset and Swagger UI file, the event streams, metrics,
/// redirects and errors of every kind, in-process.
#[tokio::test]
async fn every_content_type_is_documented() {
    assert!(covers(
        "text/event-stream",
        "text/event-stream; charset=utf-8"
    ));
    assert!(covers(
        "text/plain; version=0.0.4",
        "text/plain; version=0.0.4; charset=utf-8"
    ));
    assert!(!covers("text/plain", "text/html; charset=utf-8"));
    assert!(!covers("text/plain; version=0.0.4", "text/plain"));

    let app = app().await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let job = app.submit(json!({"job_type": "noop"})).await;
    let id = job["job_id"].as_str().expect("job_id");
    let missing = uuid::Uuid::now_v7();
    let cases = [
        ("get", "/", "/"),
        ("get", "/dashboard/{file}", "/dashboard/app.js"),
        ("get", "/dashboard/{file}", "/dashboard/style.css"),
        ("get", "/dashboard/{file}", "/dashboard/favicon.svg"),
        ("get", "/dashboard/{file}", "/dashboard/nothing.js"),
        ("get", "/dashboard/{file}", "/dashboard/%FF"),
        ("get", "/api/docs", "/api/docs"),
        ("get", "/api/docs/{file}", "/api/docs/index.html"),
        ("get", "/api/docs/{file}", "/api/docs/swagger-ui.css"),
        ("get", "/api/docs/{file}", "/api/docs/swagger-ui-bundle.js"),
        ("get", "/api/docs/{file}", "/api/docs/favicon-32x32.png"),
        ("get", "/api/docs/{file}", "/api/docs/nothing.html"),
        ("get", "/api/v1/openapi.json", "/api/v1/openapi.json"),
        ("get", "/metrics", "/metrics"),
        ("get", "/health", "/health"),
        (
            "get",
            "/api/v1/jobs/queue/stream",
            "/api/v1/jobs/queue/stream",
        ),
        (
            "get",
            "/api/v1/jobs/status/{job_id}/stream",
            &format!("/api/v1/jobs/status/{id}/stream"),
        ),
        (
            "get",
            "/api/v1/jobs/status/{job_id}/stream",
            &format!("/api/v1/jobs/status/{missing}/stream"),
        ),
        (
            "get",
            "/api/v1/jobs/status/{job_id}/stream",
            "/api/v1/jobs/status/x/stream",
        ),
        (
            "get",
            "/api/v1/jobs/status/{job_id}",
            &format!("/api/v1/jobs/status/{id}"),
        ),
        (
            "get",
            "/api/v1/jobs",
            "/api/v1/jobs?limit=1&include=parameters&status=",
        ),
        ("get", "/api/v1/jobs", "/api/v1/jobs?limit=0"),
        (
            "get",
            "/api/v1/jobs",
            &format!("/api/v1/jobs?{}", "a".repeat(9000)),
        ),
    ];
    for (method, path, url) in cases {
        let (status, content_type, _) = send(&app, &method.to_uppercase(), url, None).await;
        let response = &doc["paths"][path][method]["responses"][status.to_string()];
        assert!(!response.is_null(), "{url}: {status} is not documented");
        let documented: Vec<&String> = response["content"]
            .as_object()
            .map(|c| c.keys().collect())
            .unwrap_or_default();
        if content_type.is_empty() {
            assert!(
                documented.is_empty(),
                "{url}: {status} without a body, documented {documented:?}"
            );
        } else {
            assert!(
                documented.iter().any(|d| covers(d, &content_type)),
                "{url}: {status} answered {content_type}, documented {documented:?}"
            );
        }
    }
}

/// Validates `value` against `schema` (resolving `$ref`s in `doc`): types,
/// nullability, enums, formats (uuid, date-time), bounds, required and
/// declared properties (an object schema with properties is closed unless
/// it says `additionalProperties`), array items, oneOf/anyOf/allOf.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "dangling $ref {reference}");
        return validate(doc, target, value, at, errors);
    }
    let matches = |sub: &Value| {
        let mut inner = Vec::new();
        validate(doc, sub, value, at, &mut inner);
        inner.is_empty()
    };
    if let Some(options) = schema["oneOf"].as_array() {
        let n = options.iter().filter(|s| matches(s)).count();
        if n != 1 {
            errors.push(format!("{at}: {value} matches {n} of oneOf"));
        }
    }
    if let Some(options) = schema["anyOf"].as_array()
        && !options.iter().any(matches)
    {
        errors.push(format!("{at}: {value} matches none of anyOf"));
    }
    if let Some(all) = schema["allOf"].as_array() {
        for sub in all {
            validate(doc, sub, value, at, errors);
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let ok = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            other => panic!("unknown type {other}"),
        });
        if !ok {
            errors.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(text), Some(content)) = (value.as_str(), schema.get("contentSchema")) {
        assert_eq!(schema["contentMediaType"], "application/json", "{at}");
        match serde_json::from_str::<Value>(text) {
            Ok(parsed) => validate(doc, content, &parsed, &format!("{at}(json)"), errors),
            Err(e) => errors.push(format!("{at}: not JSON ({e}): {text}")),
        }
    }
    if let Some(text) = value.as_str() {
        match schema["format"].as_str() {
            Some("uuid") if uuid::Uuid::parse_str(text).is_err() => {
                errors.push(format!("{at}: '{text}' is not a UUID"));
            }
            Some("date-time")
                if chrono::DateTime::parse_from_rfc3339(text).is_err() || !text.ends_with('Z') =>
            {
                errors.push(format!("{at}: '{text}' is not an RFC 3339 UTC time"));
            }
            _ => {}
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            errors.push(format!("{at}: {n} is below {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            errors.push(format!("{at}: {n} is above {}", schema["maximum"]));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                errors.push(format!("{at}: required property '{name}' is missing"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (key, item) in object {
                match properties.get(key) {
                    Some(sub) => validate(doc, sub, item, &format!("{at}.{key}"), errors),
                    None if schema.get("additionalProperties").is_none() => {
                        errors.push(format!("{at}: property '{key}' is not in the schema"));
                    }
                    None => {}
                }
            }
        }
    }
    if let (Some(items), Some(schema_items)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(doc, schema_items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

#[test]
fn the_validator_catches_mismatches() {
    let doc = json!({"components": {"schemas": {
        "T": {"type": "object", "required": ["a"], "properties": {
            "a": {"type": "integer", "minimum": 0},
            "b": {"type": ["string", "null"], "format": "uuid"},
            "s": {"$ref": "#/components/schemas/S"},
            "o": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/S"}]},
            "l": {"type": "array", "items": {"type": "string", "format": "date-time"}},
            "j": {"type": "string", "contentMediaType": "application/json",
                  "contentSchema": {"$ref": "#/components/schemas/S"}}
        }},
        "S": {"type": "string", "enum": ["x"]}
    }}});
    let errors = |value: Value| {
        let mut errors = Vec::new();
        validate(
            &doc,
            &json!({"$ref": "#/components/schemas/T"}),
            &value,
            "$",
            &mut errors,
        );
        errors
    };
    let good = json!({"a": 1, "b": null, "s": "x", "o": null, "l": ["2026-01-01T00:00:00.000Z"], "j": "\"x\""});
    assert_eq!(errors(good), Vec::<String>::new());
    for bad in [
        json!({"b": null}),
        json!({"a": "1"}),
        json!({"a": -1}),
        json!({"a": 1, "extra": 2}),
        json!({"a": 1, "b": "not-a-uuid"}),
        json!({"a": 1, "s": "y"}),
        json!({"a": 1, "o": "y"}),
        json!({"a": 1, "l": ["yesterday"]}),
        json!({"a": 1, "j": "\"y\""}),
        json!({"a": 1, "j": "x"}),
        json!([]),
    ] {
        assert!(!errors(bad.clone()).is_empty(), "accepted {bad}");
    }
}

/// Asserts that `body` is what the document says `method path` answers
/// with `status`.
fn assert_documented(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "{method} {path}: status {status} is not documented"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} {status}: no JSON schema documented"
    );
    let mut errors = Vec::new();
    validate(doc, schema, body, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match the document:\n{}\nbody: {body}",
        errors.join("\n")
    );
}

/// Asserts that `value` matches the named component schema.
fn assert_schema(doc: &Value, name: &str, value: &Value) {
    let mut errors = Vec::new();
    let schema = json!({"$ref": format!("#/components/schemas/{name}")});
    validate(doc, &schema, value, name, &mut errors);
    assert!(errors.is_empty(), "{}\nvalue: {value}", errors.join("\n"));
}

/// The first event named `name` of an SSE stream, as JSON.
async fn first_event(server: &Server, path: &str, name: &str) -> Value {
    let response = server
        .http
        .get(server.at(path))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let event = block
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(str::trim);
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if event == Some(name) {
                return serde_json::from_str(&data).expect("event data is JSON");
            }
        }
        let chunk = tokio::time::timeout_at(deadline, bytes.next())
            .await
            .unwrap_or_else(|_| panic!("no {name} event on {path}"))
            .unwrap_or_else(|| panic!("{path} ended before a {name} event"))
            .expect("stream chunk");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn error_bodies_match_the_document() {
    let app = app().await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let check = |method: &str, path: &str, status: u16, body: &Value| {
        assert_documented(&doc, method, path, status, body)
    };
    let missing = uuid::Uuid::now_v7();
    for path in [
        "/api/v1/jobs/status/{job_id}",
        "/api/v1/jobs/status/{job_id}/why",
    ] {
        let (status, not_found) = app
            .get(&path.replace("{job_id}", &missing.to_string()))
            .await;
        assert_eq!(status, 404);
        check("get", path, status, &not_found);
    }
    for action in ["cancel", "restart"] {
        let path = format!("/api/v1/jobs/{action}/{{job_id}}");
        let (status, not_found) = app
            .post(&path.replace("{job_id}", &missing.to_string()), None)
            .await;
        assert_eq!(status, 404);
        check("post", &path, status, &not_found);
        let (status, bad_id) = app.post(&path.replace("{job_id}", "x"), None).await;
        assert_eq!(status, 400);
        check("post", &path, status, &bad_id);
    }
    let (status, bad_id) = app.get("/api/v1/jobs/status/not-a-uuid").await;
    assert_eq!(status, 400);
    check("get", "/api/v1/jobs/status/{job_id}", status, &bad_id);
    let (status, bad_poll) = app
        .get(&format!("/api/v1/jobs/status/{missing}/poll?timeout=-1"))
        .await;
    assert_eq!(status, 400);
    check(
        "get",
        "/api/v1/jobs/status/{job_id}/poll",
        status,
        &bad_poll,
    );
    let (status, bad_body) = app
        .post("/api/v1/jobs", Some(json!({"job_type": "no-such-type"})))
        .await;
    assert_eq!(status, 400);
    check("post", "/api/v1/jobs", status, &bad_body);
    let (status, bad_pipeline) = app.post("/api/v1/jobs/pipeline", Some(json!({}))).await;
    assert_eq!(status, 400);
    check("post", "/api/v1/jobs/pipeline", status, &bad_pipeline);
    let (status, bad_query) = app.get("/api/v1/jobs?limit=0").await;
    assert_eq!(status, 400);
    check("get", "/api/v1/jobs", status, &bad_query);
    let too_big = "x".repeat(app.state.settings.max_body_bytes + 1);
    let (status, too_large) = app.call("POST", "/api/v1/jobs", too_big).await;
    assert_eq!(status, 413);
    check("post", "/api/v1/jobs", status, &too_large);
    let (status, no_route) = app.get("/api/v1/nothing").await;
    assert_eq!(status, 404);
    assert_schema(&doc, "Error", &no_route);
}

async fn real_responses_match_the_document(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let (_, doc) = server.get("/api/v1/openapi.json").await;
    let check = |method: &str, path: &str, status: u16, body: &Value| {
        assert_documented(&doc, method, path, status, body)
    };

    // Submit and read.
    let (status, job) = server
        .post(
            "/api/v1/jobs",
            Some(json!({"job_type": "noop", "parameters": {"a": 1}, "user_id": "val"})),
        )
        .await;
    check("post", "/api/v1/jobs", status, &job);
    assert_eq!(status, 201);
    let id = job["job_id"].as_str().unwrap().to_owned();
    let done = server
        .wait_for_status(&id, "completed", Duration::from_secs(20))
        .await;
    check("get", "/api/v1/jobs/status/{job_id}", 200, &done);
    assert!(done.get("result").is_some(), "a completed job has a result");
    let (status, polled) = server
        .get(&format!("/api/v1/jobs/status/{id}/poll?timeout=0"))
        .await;
    check("get", "/api/v1/jobs/status/{job_id}/poll", status, &polled);

    // Listing, statistics, workers, throughput, health.
    let (status, page) = server.get("/api/v1/jobs?user_id=val&limit=1").await;
    check("get", "/api/v1/jobs", status, &page);
    let (status, stats) = server.get("/api/v1/jobs/queue/stats").await;
    check("get", "/api/v1/jobs/queue/stats", status, &stats);
    let workers = wait_until("a registered worker", Duration::from_secs(10), || async {
        let (_, body) = server.get("/api/v1/jobs/workers").await;
        (!body["workers"].as_array()?.is_empty()).then_some(body)
    })
    .await;
    check("get", "/api/v1/jobs/workers", 200, &workers);
    let (status, throughput) = server.get("/api/v1/jobs/queue/throughput").await;
    check("get", "/api/v1/jobs/queue/throughput", status, &throughput);
    let (status, health) = server.get("/health").await;
    check("get", "/health", status, &health);

    // Conflicts: cancel and restart of a completed job.
    let (status, conflict) = server
        .post(&format!("/api/v1/jobs/cancel/{id}"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(conflict["error"], "JobAlreadyCompletedError");
    assert_eq!(conflict["current_status"], "completed");
    check("post", "/api/v1/jobs/cancel/{job_id}", status, &conflict);
    let (status, conflict) = server
        .post(&format!("/api/v1/jobs/restart/{id}"), None)
        .await;
    assert_eq!(status, 409);
    check("post", "/api/v1/jobs/restart/{job_id}", status, &conflict);

    // A delayed job: why it waits, cancel, restart.
    let delayed = server
        .submit(json!({"job_type": "noop", "delay_seconds": 3600}))
        .await;
    let delayed_id = delayed["job_id"].as_str().unwrap();
    let (status, why) = server
        .get(&format!("/api/v1/jobs/status/{delayed_id}/why"))
        .await;
    check("get", "/api/v1/jobs/status/{job_id}/why", status, &why);
    assert_eq!(why["reasons"][0]["reason"], "scheduled");
    let (status, cancelled) = server
        .post(&format!("/api/v1/jobs/cancel/{delayed_id}"), None)
        .await;
    check("post", "/api/v1/jobs/cancel/{job_id}", status, &cancelled);
    assert_eq!(status, 200);
    let (status, restarted) = server
        .post(
            &format!("/api/v1/jobs/restart/{delayed_id}"),
            Some(json!({"parameters": {"b": 2}})),
        )
        .await;
    check("post", "/api/v1/jobs/restart/{job_id}", status, &restarted);
    assert_eq!(status, 200);

    // Event data of both streams, and each event as the document's event
    // schema of its stream describes it (`event` and JSON `data`).
    let event = first_event(
        &server,
        &format!("/api/v1/jobs/status/{id}/stream"),
        "job_complete",
    )
    .await;
    assert_schema(&doc, "Job", &event);
    assert_event(&doc, "JobStreamEvent", "job_complete", &event);
    for (name, schema) in [
        ("stats", "QueueStats"),
        ("throughput", "Throughput"),
        ("workers", "WorkerList"),
    ] {
        let data = first_event(&server, "/api/v1/jobs/queue/stream", name).await;
        assert_schema(&doc, schema, &data);
        assert_event(&doc, "QueueStreamEvent", name, &data);
    }
    // A running job's stream: the whole job, then only what changes.
    let running = server
        .submit(json!({"job_type": "sleep", "parameters": {"seconds": 2, "steps": 4}}))
        .await;
    let running = running["job_id"].as_str().unwrap();
    let events = events_until(
        &server,
        &format!("/api/v1/jobs/status/{running}/stream"),
        "job_complete",
    )
    .await;
    assert!(events.len() >= 3, "{events:?}");
    assert_schema(&doc, "Job", &events[0].1);
    assert_schema(&doc, "JobUpdate", &events[1].1);
    for (name, data) in &events {
        assert_event(&doc, "JobStreamEvent", name, data);
    }
    let gone = (
        "error",
        serde_json::to_value(json!({
            "error": "JobNotFoundError", "message": "Job x not found", "job_id": running
        }))
        .unwrap(),
    );
    assert_event(&doc, "JobStreamEvent", gone.0, &gone.1);
    let mut errors = Vec::new();
    let schema = json!({"$ref": "#/components/schemas/JobStreamEvent"});
    let wrong = json!({"event": "job_complete", "data": json!({"job_id": running}).to_string()});
    validate(&doc, &schema, &wrong, "$", &mut errors);
    assert!(
        !errors.is_empty(),
        "a partial job as job_complete was accepted"
    );
}

/// Asserts that the event `name` with `data` matches the component schema
/// `schema` of a stream's events.
fn assert_event(doc: &Value, schema: &str, name: &str, data: &Value) {
    let event = json!({"event": name, "data": data.to_string()});
    assert_schema(doc, schema, &event);
}

/// The events of an SSE stream, as (name, JSON data), up to and with the
/// first named `last`.
async fn events_until(server: &Server, path: &str, last: &str) -> Vec<(String, Value)> {
    let response = server
        .http
        .get(server.at(path))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(name) = block
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(|n| n.trim().to_owned())
            else {
                continue;
            };
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            let done = name == last;
            events.push((
                name,
                serde_json::from_str(&data).expect("event data is JSON"),
            ));
            if done {
                return events;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, bytes.next())
            .await
            .unwrap_or_else(|_| panic!("no {last} event on {path}: {events:?}"))
            .unwrap_or_else(|| panic!("{path} ended before a {last} event"))
            .expect("stream chunk");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn why_names_the_user_limit_and_missing_workers(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(
        &scratch,
        &["--per-user-max-concurrent-jobs".into(), "1".into()],
    );
    let long = json!({"seconds": 60, "steps": 60});
    let first = server
        .submit(json!({"job_type": "sleep", "parameters": long, "user_id": "dora"}))
        .await;
    let first = first["job_id"].as_str().unwrap().to_owned();
    server
        .wait_for_status(&first, "running", Duration::from_secs(20))
        .await;
    let second = server
        .submit(json!({"job_type": "sleep", "parameters": long, "user_id": "dora"}))
        .await;
    let second = second["job_id"].as_str().unwrap().to_owned();
    let (status, why) = server
        .get(&format!("/api/v1/jobs/status/{second}/why"))
        .await;
    assert_eq!(status, 200, "{why}");
    assert_eq!(why["status"], "pending");
    assert_eq!(why["reasons"][0]["reason"], "user_limit", "{why}");
    assert_eq!(why["user_running_jobs"], 1);
    let (_, running) = server
        .get(&format!("/api/v1/jobs/status/{first}/why"))
        .await;
    assert_eq!(running["reasons"][0]["reason"], "not_waiting");
    for id in [&first, &second] {
        let (status, _) = server
            .post(&format!("/api/v1/jobs/cancel/{id}"), None)
            .await;
        assert_eq!(status, 200);
    }
    // A clean stop unregisters the worker (a killed one would stay
    // registered until its lease ran out).
    assert!(server.terminate(Duration::from_secs(10)), "a clean stop");

    // The same store with no worker process alive.
    let api_only = Server::serve(&scratch, &["--workers".into(), "0".into()]);
    let id = api_only.submit_id("noop", json!({})).await;
    let why = wait_until("no live worker", Duration::from_secs(10), || async {
        let (_, why) = api_only.get(&format!("/api/v1/jobs/status/{id}/why")).await;
        (why["active_workers"] == 0).then_some(why)
    })
    .await;
    assert_eq!(why["reasons"][0]["reason"], "no_workers", "{why}");
}

crate::for_each_store!(
    real_responses_match_the_document,
    why_names_the_user_limit_and_missing_workers
);
