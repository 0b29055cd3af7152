//! What a job type's code sees: the [`JobHandler`] trait, the [`JobContext`]
//! it runs with, and the [`JobFailure`] it may end an attempt with.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::job_log::LogBuffer;
use crate::model::{Job, JobId, Millis, Progress};
use crate::store::LogStream;

/// The code behind a job type. `run` returns the job's result, or an error
/// that fails the attempt (retried by the job type's rule while attempts
/// are left; return a [`JobFailure`] to say otherwise). It should watch
/// [`JobContext::cancelled`] and stop promptly: after the cancel grace
/// period its future is dropped.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Runs one attempt of a job.
    async fn run(&self, ctx: JobContext) -> anyhow::Result<Value>;

    /// Checks a submission's parameters before the job is stored, so what
    /// the handler would refuse anyway is a 400 with this message rather
    /// than a failed job. Accepts everything unless a handler says more.
    fn check_parameters(&self, _parameters: &Value) -> Result<(), String> {
        Ok(())
    }

    /// Moves what a submission carries inline to where the job reads it at
    /// run time (the pipeline keeps documents as an input artifact), and
    /// returns the parameters to store. Runs after `check_parameters`, once
    /// the job's id is known; an error is the storage's, not the caller's.
    async fn prepare_parameters(&self, _job_id: JobId, parameters: Value) -> anyhow::Result<Value> {
        Ok(parameters)
    }
}

/// A failed attempt that overrides the job type's retry rule: return it as
/// the handler's error (`Err(JobFailure::permanent("bad input").into())`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct JobFailure {
    message: String,
    retry: Retry,
}

/// When a [`JobFailure`] is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Never: the job fails now, whatever attempts are left.
    Never,
    /// At this time, if attempts are left.
    At(Millis),
    /// This long after the attempt ends (by the store's clock), if attempts
    /// are left.
    After(Duration),
}

impl JobFailure {
    /// Fails the job now: retrying cannot help (bad input, say).
    pub fn permanent(message: impl Into<String>) -> JobFailure {
        JobFailure {
            message: message.into(),
            retry: Retry::Never,
        }
    }

    /// Fails the attempt and retries at `at`, if attempts are left (the
    /// handler knows when: a rate limit's reset, say).
    pub fn retry_at(message: impl Into<String>, at: Millis) -> JobFailure {
        JobFailure {
            message: message.into(),
            retry: Retry::At(at),
        }
    }

    /// Fails the attempt and retries `delay` after it ends, if attempts are
    /// left.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> JobFailure {
        JobFailure {
            message: message.into(),
            retry: Retry::After(delay),
        }
    }

    /// When the attempt is retried.
    pub fn retry(&self) -> Retry {
        self.retry
    }
}

/// A running job as its handler sees it.
pub struct JobContext {
    job: Arc<Job>,
    dependencies: Vec<Arc<Job>>,
    progress: watch::Sender<Option<Progress>>,
    cancel: CancellationToken,
    log: Option<Arc<LogBuffer>>,
}

impl JobContext {
    /// A context for `job`; progress goes to `progress`, stop requests come
    /// through `cancel`.
    pub fn new(
        job: Arc<Job>,
        progress: watch::Sender<Option<Progress>>,
        cancel: CancellationToken,
    ) -> JobContext {
        JobContext {
            job,
            dependencies: Vec::new(),
            progress,
            cancel,
            log: None,
        }
    }

    /// The same context, its log lines going to `log` (the executor
    /// writes them to the job's log in the store).
    pub fn with_log(mut self, log: Arc<LogBuffer>) -> JobContext {
        self.log = Some(log);
        self
    }

    /// Adds a line to the job's log (`GET /status/{id}/logs`). Cheap: lines
    /// are written in batches beside the handler, the last ones before
    /// the attempt's outcome; a line is cut at 16 KiB.
    pub fn log(&self, line: impl Into<String>) {
        self.log_to(LogStream::Log, line);
    }

    /// Adds a line of `stream` to the job's log (an external command's
    /// output).
    pub(crate) fn log_to(&self, stream: LogStream, line: impl Into<String>) {
        if let Some(log) = &self.log {
            log.push(stream, line);
        }
    }

    /// Where the job's log lines go, if anywhere: for readers that outlive
    /// a borrow of the context (an external command's stderr task).
    pub(crate) fn log_buffer(&self) -> Option<Arc<LogBuffer>> {
        self.log.clone()
    }

    /// The same context, with the completed jobs this one depends on.
    pub fn with_dependencies(mut self, dependencies: Vec<Arc<Job>>) -> JobContext {
        self.dependencies = dependencies;
        self
    }

    /// The completed jobs this job depends on, with their results, in the
    /// order of its `depends_on`.
    pub fn dependencies(&self) -> &[Arc<Job>] {
        &self.dependencies
    }

    /// The job, with its parameters.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The job's parameters, a JSON object.
    pub fn parameters(&self) -> &Value {
        &self.job.parameters
    }

    /// Reports progress. Cheap: reports are coalesced, and only the latest
    /// is written to the store.
    pub fn report(&self, progress: Progress) {
        self.progress.send_replace(Some(progress.clamped()));
    }

    /// Resolves when the job should stop: cancelled, timed out, its claim
    /// lost, or the worker shutting down.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// True once the job should stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
