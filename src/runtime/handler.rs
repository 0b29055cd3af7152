//! What a job type's code sees: the [`JobHandler`] trait, the [`JobContext`]
//! it runs with, and the [`JobFailure`] it may end an attempt with.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::{Job, Millis, Progress};

/// The code behind a job type. `run` returns the job's result, or an error
/// that fails the attempt (retried by the job type's rule while attempts
/// are left; return a [`JobFailure`] to say otherwise). It should watch
/// [`JobContext::cancelled`] and stop promptly: after the cancel grace
/// period its future is dropped.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Runs one attempt of a job.
    async fn run(&self, ctx: JobContext) -> anyhow::Result<Value>;
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
        }
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
