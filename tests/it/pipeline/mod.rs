//! The document-pipeline handlers called directly, one file per step:
//! chunking of real documents and confinement to the documents root
//! ([`documents`]), a deterministic taxonomy ([`taxonomy`]), extraction of
//! the obvious categories ([`extraction`]), the dataset split and its files
//! ([`dataset`]), and cancellation that leaves no artifact behind
//! ([`cancel`]). This file holds what they share: a job context to run a
//! handler in, and readers of its artifacts.

mod cancel;
mod dataset;
mod documents;
mod extraction;
mod real_documents;
mod taxonomy;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jobd::model::{Job, JobStatus, Progress};
use jobd::pipeline::{Dirs, documents as documents_step, taxonomy as taxonomy_step};
use jobd::runtime::{JobContext, JobHandler};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn docs_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/docs")
}

fn dirs(data_dir: &Path) -> Dirs {
    Dirs::local(Some(docs_root()), data_dir.to_path_buf()).unwrap()
}

fn job(job_type: &str, parameters: Value) -> Job {
    Job {
        id: uuid::Uuid::now_v7(),
        job_type: job_type.into(),
        remote: false,
        user_id: "tester".into(),
        concurrency_key: None,
        status: JobStatus::Running,
        priority: 0,
        parameters,
        result: None,
        error: None,
        progress: Progress::default(),
        attempts: 1,
        max_attempts: 1,
        interruptions: 0,
        timeout_seconds: None,
        created_at: 0,
        scheduled_for: None,
        started_at: Some(0),
        completed_at: None,
        updated_at: 0,
        worker_id: None,
        revision: 1,
        depends_on: Vec::new(),
        waiting_dependencies: 0,
        cancelled_by: None,
        expires_at: None,
        schedule: None,
    }
}

/// A completed job of `job_type` with `result`, to depend on.
/// Its id is that of the job that wrote the result's `artifact` (its
/// directory's name), as a step reads only its dependencies' artifacts;
/// a new one when there is none.
fn completed(job_type: &str, result: Value) -> Arc<Job> {
    let writer = result["artifact"]
        .as_str()
        .and_then(|reference| reference.split_once('/'))
        .and_then(|(job, _)| uuid::Uuid::parse_str(job).ok());
    completed_as(writer.unwrap_or_else(uuid::Uuid::now_v7), job_type, result)
}

/// [`completed`] with the id `id` (which names its artifact directory).
fn completed_as(id: uuid::Uuid, job_type: &str, result: Value) -> Arc<Job> {
    let mut job = job(job_type, json!({}));
    job.id = id;
    job.status = JobStatus::Completed;
    job.result = Some(result);
    Arc::new(job)
}

/// A handler running in the background, with its progress and stop signal.
struct Running {
    job_id: uuid::Uuid,
    handle: JoinHandle<anyhow::Result<Value>>,
    progress: watch::Receiver<Option<Progress>>,
    cancel: CancellationToken,
}

fn start(handler: Arc<dyn JobHandler>, params: Value, deps: Vec<Arc<Job>>) -> Running {
    let mut job = job("pipeline", params);
    job.depends_on = deps.iter().map(|dep| dep.id).collect();
    let job_id = job.id;
    let (tx, progress) = watch::channel(None);
    let cancel = CancellationToken::new();
    let ctx = JobContext::new(Arc::new(job), tx, cancel.clone()).with_dependencies(deps);
    let handle = tokio::spawn(async move { handler.run(ctx).await });
    Running {
        job_id,
        handle,
        progress,
        cancel,
    }
}

/// Runs a handler to its end; returns the result and the last progress.
async fn run(
    handler: Arc<dyn JobHandler>,
    params: Value,
    deps: Vec<Arc<Job>>,
) -> (anyhow::Result<Value>, Option<Progress>) {
    let running = start(handler, params, deps);
    let result = running.handle.await.unwrap();
    let progress = *running.progress.borrow();
    (result, progress)
}

async fn ok(handler: Arc<dyn JobHandler>, params: Value, deps: Vec<Arc<Job>>) -> Value {
    match run(handler, params, deps).await.0 {
        Ok(result) => result,
        Err(e) => panic!("job failed: {e:#}"),
    }
}

/// Where the artifact a result names (`<job_id>/<name>`) is kept in
/// `data_dir`'s default artifact directory.
fn artifact_file(data_dir: &Path, reference: &Value) -> PathBuf {
    data_dir
        .join("artifacts")
        .join(reference.as_str().expect("artifact reference"))
}

fn read_jsonl(data_dir: &Path, reference: &Value) -> Vec<Value> {
    std::fs::read_to_string(artifact_file(data_dir, reference))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The names in the artifacts root.
fn artifact_entries(data_dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(data_dir.join("artifacts")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Runs document_processing on topics.md in paragraph-sized chunks, then a
/// taxonomy over it; returns the documents job and the taxonomy job.
async fn topics_taxonomy(data_dir: &Path) -> (Arc<Job>, Arc<Job>) {
    topics_taxonomy_with(data_dir, json!({"chunk_size": 400, "chunk_overlap": 0})).await
}

/// As [`topics_taxonomy`], with these chunking parameters.
async fn topics_taxonomy_with(data_dir: &Path, chunking: Value) -> (Arc<Job>, Arc<Job>) {
    let mut params = chunking;
    params["path"] = json!("topics.md");
    let documents = ok(
        Arc::new(documents_step::handler(dirs(data_dir))),
        params,
        vec![],
    )
    .await;
    let documents = completed("document_processing", documents);
    let taxonomy = ok(
        Arc::new(taxonomy_step::handler(dirs(data_dir))),
        json!({}),
        vec![documents.clone()],
    )
    .await;
    (documents, completed("taxonomy_processing", taxonomy))
}

/// The topic a category is about: the section of topics.md that mentions
/// its terms (as whole words) most, if one does so more than the others.
fn topic_of(terms: &[&str]) -> &'static str {
    let source = std::fs::read_to_string(docs_root().join("topics.md")).unwrap();
    let mut mentions: Vec<(usize, &'static str)> = sections(&source)
        .into_iter()
        .map(|(topic, section)| {
            let lower = section.to_lowercase();
            let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
            let count = terms
                .iter()
                .map(|t| words.iter().filter(|w| *w == t).count())
                .sum();
            (count, topic)
        })
        .collect();
    mentions.sort_unstable_by(|a, b| b.cmp(a));
    if mentions[0].0 > mentions[1].0 {
        mentions[0].1
    } else {
        "none"
    }
}

/// The three topic sections of topics.md: `(topic, text)`.
fn sections(source: &str) -> Vec<(&'static str, &str)> {
    let at = |heading: &str| source.find(heading).unwrap();
    let (cooking, astronomy, football) = (at("## Cooking"), at("## Astronomy"), at("## Football"));
    vec![
        ("cooking", &source[cooking..astronomy]),
        ("astronomy", &source[astronomy..football]),
        ("football", &source[football..]),
    ]
}

fn terms_of(category: &Value) -> Vec<&str> {
    category["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}
