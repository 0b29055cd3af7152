//! A job's artifacts over HTTP, in-process on both stores: a submission's
//! inline documents become the job's input artifact (the job keeps a short
//! note), which is listed, downloaded whole and by range; bad names, bad
//! ranges and missing artifacts get their errors.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::app::{App, body_bytes};
use crate::support::StoreKind;

/// `GET path` with a `Range` header (or none): status, headers, body.
async fn fetch(
    app: &App,
    path: &str,
    range: Option<&str>,
) -> (u16, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::get(path);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = app.send(request.body(Body::empty()).unwrap()).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, body_bytes(response).await.to_vec())
}

fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().unwrap())
}

async fn inline_documents_become_a_downloadable_input_artifact(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let text = "A sentence about the stars and their orbits. ".repeat(2_000);
    let job = app
        .submit(json!({"job_type": "document_processing",
                       "parameters": {"text": text, "name": "stars.md", "chunk_size": 500}}))
        .await;
    let id = job["job_id"].as_str().unwrap();

    // The job carries a note, not the document.
    let parameters = &job["parameters"];
    assert_eq!(parameters.get("text"), None, "{parameters}");
    assert_eq!(parameters["input"]["documents"], 1);
    assert_eq!(parameters["input"]["bytes"], text.len());
    assert_eq!(parameters["input"]["artifact"], format!("{id}/input.json"));
    assert_eq!(parameters["chunk_size"], 500);
    let (_, status) = app.get(&format!("/api/v1/jobs/status/{id}")).await;
    assert!(status.to_string().len() < 2_000, "{status}");

    let base = format!("/api/v1/jobs/status/{id}/artifacts");
    let (code, listed) = app.get(&base).await;
    assert_eq!(code, 200, "{listed}");
    let artifacts = listed["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 1, "{listed}");
    assert_eq!(artifacts[0]["name"], "input.json");
    assert_eq!(artifacts[0]["media_type"], "application/json");
    assert_eq!(artifacts[0]["url"], format!("{base}/input.json"));
    let size = artifacts[0]["size"].as_u64().unwrap();

    // Whole, with its length.
    let (code, headers, body) = fetch(&app, &format!("{base}/input.json"), None).await;
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "content-length"), size.to_string());
    assert_eq!(header(&headers, "accept-ranges"), "bytes");
    let input: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(input["documents"][0]["text"], text);
    assert_eq!(input["documents"][0]["name"], "stars.md");

    // One range, and the rest of the file from there: the two make the whole.
    let (code, headers, head) =
        fetch(&app, &format!("{base}/input.json"), Some("bytes=0-99")).await;
    assert_eq!(code, 206);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 0-99/{size}")
    );
    assert_eq!(header(&headers, "content-length"), "100");
    let (code, _, tail) = fetch(&app, &format!("{base}/input.json"), Some("bytes=100-")).await;
    assert_eq!(code, 206);
    assert_eq!([head, tail].concat(), body);
    // Several ranges: the whole file; a malformed header is ignored.
    for range in ["bytes=0-1,5-6", "bytes=abc"] {
        let (code, _, whole) = fetch(&app, &format!("{base}/input.json"), Some(range)).await;
        assert_eq!((code, whole.len()), (200, body.len()), "{range}");
    }
    // Past the end: 416 with the size.
    let (code, headers, error) = fetch(
        &app,
        &format!("{base}/input.json"),
        Some(&format!("bytes={size}-")),
    )
    .await;
    assert_eq!(code, 416);
    assert_eq!(header(&headers, "content-range"), format!("bytes */{size}"));
    let error: Value = serde_json::from_slice(&error).unwrap();
    assert_eq!(error["error"], "RangeNotSatisfiableError", "{error}");

    // Names: missing, hidden or a path; jobs: missing or malformed.
    let (code, error) = app.get(&format!("{base}/train.jsonl")).await;
    assert_eq!(
        (code, error["error"].as_str()),
        (404, Some("ArtifactNotFoundError"))
    );
    for name in [".env", "..%2Finput.json"] {
        let (code, error) = app.get(&format!("{base}/{name}")).await;
        assert_eq!(
            (code, error["error"].as_str()),
            (400, Some("ValidationError")),
            "{name}"
        );
    }
    let missing = uuid::Uuid::now_v7();
    let (code, error) = app
        .get(&format!("/api/v1/jobs/status/{missing}/artifacts"))
        .await;
    assert_eq!(
        (code, error["error"].as_str()),
        (404, Some("JobNotFoundError"))
    );
    let (code, error) = app
        .get("/api/v1/jobs/status/nope/artifacts/input.json")
        .await;
    assert_eq!(
        (code, error["error"].as_str()),
        (400, Some("InvalidJobIdError"))
    );
}

async fn the_pipeline_call_stores_its_documents_once_as_the_input(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let documents = json!([{"name": "a.md", "text": "# A\n\nAlpha text."},
                           {"name": "b.txt", "text": "Beta text.", "format": "text"}]);
    let (code, answer) = app
        .post(
            "/api/v1/jobs/pipeline",
            Some(json!({"documents": documents})),
        )
        .await;
    assert_eq!(code, 201, "{answer}");
    let first = answer["job_ids"][0].as_str().unwrap();
    let (_, job) = app.get(&format!("/api/v1/jobs/status/{first}")).await;
    assert_eq!(job["parameters"]["input"]["documents"], 2, "{job}");
    assert_eq!(job["parameters"].get("documents"), None, "{job}");
    let (_, body) = app
        .get(&format!("/api/v1/jobs/status/{first}/artifacts/input.json"))
        .await;
    assert_eq!(body["documents"], documents);
    // The later stages have no artifact until they run.
    let last = answer["job_ids"][3].as_str().unwrap();
    let (_, listed) = app
        .get(&format!("/api/v1/jobs/status/{last}/artifacts"))
        .await;
    assert_eq!(listed["artifacts"], json!([]));
    // The server sets `input`, never the caller.
    let (code, error) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"job_type": "document_processing",
            "parameters": {"input": {"artifact": format!("{first}/input.json")}}})),
        )
        .await;
    assert_eq!(
        (code, error["error"].as_str()),
        (400, Some("ValidationError")),
        "{error}"
    );
}

crate::for_each_store!(
    inline_documents_become_a_downloadable_input_artifact,
    the_pipeline_call_stores_its_documents_once_as_the_input,
);
