//! Cancellation: a step cancelled while it works stops with "cancelled"
//! and leaves no artifact behind.
//!
//! Deterministic by construction, whatever the machine's speed: a small job
//! could finish before a cancel sent on its first progress report reaches
//! it, so the steps that read a file read it from a FIFO that the test holds
//! open, and cannot finish until the test closes it, which it does only when
//! the step has stopped reading. `document_processing` reads only regular
//! files, so it is cancelled before it starts. No check counts time; the
//! deadlines only turn a hang into a failure.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use jobd::model::Job;
use jobd::pipeline::{dataset, documents, extraction, taxonomy};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{Running, artifact_entries, completed_as, dirs, start};

/// How long a step may take to react before the test calls it hung.
const HANG: Duration = Duration::from_secs(120);

/// Lines a [`Feed`] writes at most after the cancel; the step stops long
/// before, and would fail at its next check even if it read them all.
const MAX_LINES: u64 = 100_000;

/// A FIFO fed by a thread. The thread's open returns once the step has
/// opened the FIFO for reading; it writes the first line, says so, waits for
/// the go-ahead (sent after the cancel), then writes lines until the step
/// closes its end. The FIFO stays open until then, so the step cannot reach
/// the end of its input before it has seen the cancel.
struct Feed {
    opened: oneshot::Receiver<()>,
    go: mpsc::Sender<()>,
    thread: thread::JoinHandle<io::Result<u64>>,
}

impl Feed {
    /// Makes a FIFO at `path` and starts feeding it `line(0)`, `line(1)`, ...
    fn start(path: &Path, line: impl Fn(u64) -> Value + Send + 'static) -> Feed {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
        let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
        assert_eq!(made, 0, "mkfifo: {}", io::Error::last_os_error());
        let path = path.to_path_buf();
        let (opened_tx, opened) = oneshot::channel();
        let (go, go_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut fifo = OpenOptions::new().write(true).open(&path)?;
            writeln!(fifo, "{}", line(0))?;
            let _ = opened_tx.send(());
            if go_rx.recv().is_err() {
                return Ok(1);
            }
            for i in 1..MAX_LINES {
                if writeln!(fifo, "{}", line(i)).is_err() {
                    // Broken pipe: the step has stopped reading.
                    return Ok(i);
                }
            }
            Ok(MAX_LINES)
        });
        Feed { opened, go, thread }
    }

    /// Resolves once the step has opened the FIFO and its first line is in.
    async fn opened(&mut self) {
        tokio::time::timeout(HANG, &mut self.opened)
            .await
            .expect("the step did not open its input")
            .expect("the feeding thread failed");
    }

    /// Lets the thread write on, and waits until the step has closed the
    /// FIFO.
    fn finish(self) {
        let _ = self.go.send(());
        self.thread.join().unwrap().unwrap();
    }
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

/// Runs `handler` on chunks read from a FIFO, and cancels it once it has
/// opened them.
async fn cancelled_while_reading_chunks(
    data_dir: &Path,
    handler: Arc<dyn jobd::runtime::JobHandler>,
    mut params: Value,
) {
    let (dir, source) = input_dir(data_dir);
    let path = dir.join("chunks.jsonl");
    let before: Vec<String> = artifact_entries(data_dir).into_iter().collect();
    let mut feed = Feed::start(&path, chunk_line);
    params["chunks_artifacts"] = json!([path]);
    let source = completed_as(source, "document_processing", json!({}));
    let running = start(handler, params, vec![source]);
    feed.opened().await;
    running.cancel.cancel();
    let stopped = stops_cancelled(data_dir, running, &before);
    let fed = tokio::task::spawn_blocking(move || feed.finish());
    stopped.await;
    fed.await.unwrap();
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
async fn taxonomy_processing_stops_when_cancelled_while_reading() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(taxonomy::handler(dirs(data.path())));
    cancelled_while_reading_chunks(data.path(), handler, json!({})).await;
}

#[tokio::test]
async fn extraction_stops_when_cancelled_while_reading() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(extraction::handler(dirs(data.path())));
    let taxonomy = json!([
        {"name": "astronomy", "terms": ["telescope", "planets", "stars", "orbit"]},
        {"name": "football", "terms": ["striker", "goal", "goalkeeper", "referee"]},
    ]);
    cancelled_while_reading_chunks(data.path(), handler, json!({"taxonomy": taxonomy})).await;
}

#[tokio::test]
async fn dataset_generation_stops_when_cancelled_on_its_first_progress_report() {
    let data = tempfile::tempdir().unwrap();
    let (dir, source) = input_dir(data.path());
    let path = dir.join("extractions.jsonl");
    let before: Vec<String> = artifact_entries(data.path()).into_iter().collect();
    let mut feed = Feed::start(&path, |i| {
        json!({"chunk_id": format!("doc#{i}"), "source": "doc", "text": format!("Chunk {i} about the stars."),
               "categories": [{"name": "astronomy", "score": 0.5}]})
    });
    let extraction: Arc<Job> = completed_as(
        source,
        "extraction",
        json!({"artifact": path, "chunks": 10, "assignments": 10}),
    );
    let handler = Arc::new(dataset::handler(dirs(data.path())));
    let mut running = start(handler, json!({}), vec![extraction]);
    feed.opened().await;
    // The step reports progress for each line it reads; the FIFO holds the
    // rest of its input back, so it is still reading when the cancel comes.
    tokio::time::timeout(HANG, running.progress.wait_for(Option::is_some))
        .await
        .expect("no progress report")
        .unwrap();
    running.cancel.cancel();
    let stopped = stops_cancelled(data.path(), running, &before);
    let fed = tokio::task::spawn_blocking(move || feed.finish());
    stopped.await;
    fed.await.unwrap();
}
