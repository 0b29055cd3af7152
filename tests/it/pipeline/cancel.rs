//! Cancellation: a step cancelled while it works stops with "cancelled"
//! and leaves no artifact behind.
//!
//! The steps that read chunks or extractions are given a large input (a
//! real artifact of [`LINES`] lines) and cancelled on their first progress
//! report, long before they could finish it; `document_processing` is
//! cancelled before it starts. No check counts time; the deadlines only
//! turn a hang into a failure.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jobd::model::Job;
use jobd::pipeline::{dataset, documents, extraction, taxonomy};
use serde_json::{Value, json};

use super::{Running, artifact_entries, completed_as, dirs, start};

/// How long a step may take to react before the test calls it hung.
const HANG: Duration = Duration::from_secs(120);

/// Lines of a large input: seconds of work for any step, which a cancel
/// sent on the first progress report interrupts.
const LINES: u64 = 200_000;

/// Writes `line(0)`, `line(1)`, ... up to [`LINES`] into `path`.
fn write_input(path: &Path, line: impl Fn(u64) -> Value) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..LINES {
        serde_json::to_writer(&mut out, &line(i)).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
}

/// Cancels `running` once it has reported progress.
async fn cancel_on_first_progress(running: &mut Running) {
    tokio::time::timeout(HANG, running.progress.wait_for(Option::is_some))
        .await
        .expect("no progress report")
        .unwrap();
    running.cancel.cancel();
}

/// A directory under the artifacts root, as a finished job would leave it,
/// for an input file; and that job's id (a step reads only the artifacts
/// of the jobs it depends on).
fn input_dir(data_dir: &Path) -> (PathBuf, uuid::Uuid) {
    let id = uuid::Uuid::now_v7();
    let dir = data_dir.join("artifacts").join(id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    (dir, id)
}

/// Waits for the cancelled job to end; checks that it failed with
/// "cancelled" and that the artifacts root is as it was `before`.
async fn stops_cancelled(data_dir: &Path, mut running: Running, before: &[String]) {
    let outcome = tokio::time::timeout(HANG, &mut running.handle)
        .await
        .expect("the cancelled job did not stop")
        .unwrap();
    let error = outcome.expect_err("a cancelled job must fail");
    assert!(format!("{error:#}").contains("cancelled"), "{error:#}");
    let after: Vec<String> = artifact_entries(data_dir).into_iter().collect();
    assert_eq!(after, before, "artifacts left behind by {}", running.job_id);
}

/// A chunk line, as `document_processing` writes them.
fn chunk_line(i: u64) -> Value {
    let topics = [
        "The telescope tracked the planets and stars while astronomers logged the orbit.",
        "The striker scored a goal and the goalkeeper argued with the referee.",
        "Simmer the sauce with garlic, then bake the dough in a hot oven.",
    ];
    json!({"chunk_id": format!("doc#{i}"), "source": "doc", "index": i,
           "text": topics[(i % 3) as usize]})
}

/// Runs `handler` on a large chunk artifact of a job it depends on, and
/// cancels it on its first progress report.
async fn cancelled_while_working_on_chunks(
    data_dir: &Path,
    handler: Arc<dyn jobd::runtime::JobHandler>,
    mut params: Value,
) {
    let (dir, source) = input_dir(data_dir);
    write_input(&dir.join("chunks.jsonl"), chunk_line);
    let before: Vec<String> = artifact_entries(data_dir).into_iter().collect();
    params["chunks_artifacts"] = json!([format!("{source}/chunks.jsonl")]);
    let source = completed_as(source, "document_processing", json!({}));
    let mut running = start(handler, params, vec![source]);
    cancel_on_first_progress(&mut running).await;
    stops_cancelled(data_dir, running, &before).await;
}

#[tokio::test]
async fn document_processing_cancelled_before_it_starts_does_nothing() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(documents::handler(dirs(data.path())));
    let params = json!({"text": "One paragraph.\n\nAnother one.", "chunk_size": 20});
    let running = start(handler, params, vec![]);
    // The handler has not been polled yet (a current-thread runtime), so
    // the job is cancelled before its step starts.
    running.cancel.cancel();
    stops_cancelled(data.path(), running, &[]).await;
}

#[tokio::test]
async fn taxonomy_processing_stops_when_cancelled_while_working() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(taxonomy::handler(dirs(data.path())));
    cancelled_while_working_on_chunks(data.path(), handler, json!({})).await;
}

#[tokio::test]
async fn extraction_stops_when_cancelled_while_working() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(extraction::handler(dirs(data.path())));
    let taxonomy = json!([
        {"name": "astronomy", "terms": ["telescope", "planets", "stars", "orbit"]},
        {"name": "football", "terms": ["striker", "goal", "goalkeeper", "referee"]},
    ]);
    cancelled_while_working_on_chunks(data.path(), handler, json!({"taxonomy": taxonomy})).await;
}

#[tokio::test]
async fn dataset_generation_stops_when_cancelled_on_its_first_progress_report() {
    let data = tempfile::tempdir().unwrap();
    let (dir, source) = input_dir(data.path());
    write_input(&dir.join("extractions.jsonl"), |i| {
        json!({"chunk_id": format!("doc#{i}"), "source": "doc", "text": format!("Chunk {i} about the stars."),
               "categories": [{"name": "astronomy", "score": 0.5}]})
    });
    let before: Vec<String> = artifact_entries(data.path()).into_iter().collect();
    let extraction: Arc<Job> = completed_as(
        source,
        "extraction",
        json!({"artifact": format!("{source}/extractions.jsonl"), "chunks": 10, "assignments": 10}),
    );
    let handler = Arc::new(dataset::handler(dirs(data.path())));
    let mut running = start(handler, json!({}), vec![extraction]);
    cancel_on_first_progress(&mut running).await;
    stops_cancelled(data.path(), running, &before).await;
}
