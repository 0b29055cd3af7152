//! What a job type's code sees: the [`JobHandler`] trait, the [`JobContext`]
//! it runs with, and the [`Registry`] that maps job types to handlers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{JobTypeConfig, Settings};
use crate::model::{Job, Millis, Progress};

use super::external::ExternalCommand;

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

/// A job type as workers run it: its handler and its options.
#[derive(Clone)]
pub struct JobType {
    /// The code that runs it.
    pub handler: Arc<dyn JobHandler>,
    /// Per-attempt time limit, unless the job sets its own.
    pub timeout: Option<Duration>,
    /// Attempts allowed, unless the job sets its own.
    pub max_attempts: u32,
    /// Base of the exponential retry backoff.
    pub retry_backoff: Duration,
}

/// The known job types: built-ins, overridden or joined by the configured ones.
#[derive(Clone, Default)]
pub struct Registry {
    types: BTreeMap<String, JobType>,
}

impl Registry {
    /// The `builtins` (compiled-in handlers by name) plus the types of
    /// `settings.job_types`; a configured type with a `command` replaces a
    /// built-in of the same name, one without only sets the built-in's
    /// options.
    pub fn from_settings(
        settings: &Settings,
        builtins: impl IntoIterator<Item = (&'static str, Arc<dyn JobHandler>)>,
    ) -> anyhow::Result<Registry> {
        let mut builtins: BTreeMap<String, Arc<dyn JobHandler>> = builtins
            .into_iter()
            .map(|(name, handler)| (name.to_owned(), handler))
            .collect();
        let mut configured = settings.job_types.clone();
        for name in builtins.keys() {
            configured.entry(name.clone()).or_default();
        }
        let mut registry = Registry::default();
        for (name, config) in configured {
            let handler: Arc<dyn JobHandler> = match (&config.command, builtins.remove(&name)) {
                (Some(command), _) => Arc::new(ExternalCommand::new(command.clone())),
                (None, Some(builtin)) => builtin,
                (None, None) => {
                    anyhow::bail!("job type {name} has no command and is not a built-in type")
                }
            };
            registry.insert(name, handler, &config, settings);
        }
        Ok(registry)
    }

    /// Adds (or replaces) a job type.
    pub fn insert(
        &mut self,
        name: String,
        handler: Arc<dyn JobHandler>,
        config: &JobTypeConfig,
        settings: &Settings,
    ) {
        let job_type = JobType {
            handler,
            timeout: config.timeout_seconds.map(Duration::from_secs_f64),
            max_attempts: config.max_attempts.unwrap_or(settings.default_max_attempts),
            retry_backoff: config
                .retry_backoff_seconds
                .map(Duration::from_secs_f64)
                .unwrap_or(settings.retry_backoff),
        };
        self.types.insert(name, job_type);
    }

    /// The job type of this name.
    pub fn get(&self, name: &str) -> Option<&JobType> {
        self.types.get(name)
    }

    /// The names of all job types, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.types.keys().map(String::as_str).collect()
    }
}
