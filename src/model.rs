//! The job model: identifiers, statuses and their state machine, and the job
//! object the API returns. Pure data, no I/O.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

pub mod audit;
mod debounce;
mod idempotency;
mod schedule;
mod token;

pub use self::debounce::Debounce;
pub use self::idempotency::{IdempotencyKey, Submitted};
pub use self::schedule::{
    Cadence, Schedule, ScheduleOrigin, ScheduleSpec, ScheduleTick, check_schedule_name,
};
pub use self::token::{ApiToken, Role, UnknownRole};

/// A job's identifier: a UUID v7, so ids sort by creation time.
pub type JobId = Uuid;

/// Milliseconds since the Unix epoch, UTC. Every timestamp is stored this way,
/// so there is no naive-versus-aware confusion anywhere below the API.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}

/// `duration` in [`Millis`], saturating.
pub fn duration_millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

/// Where the time of every store operation comes from: the system clock,
/// or a [`ManualClock`] that tests set and advance. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<ManualClock>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// The current time.
    pub fn now(&self) -> Millis {
        match &self.0 {
            None => now_millis(),
            Some(manual) => manual.now(),
        }
    }

    /// The time `span` before now (a cutoff such as "active since").
    pub fn ago(&self, span: Duration) -> Millis {
        self.now().saturating_sub(duration_millis(span))
    }
}

/// A clock that stands still until set or advanced; its clones (and the
/// [`Clock`]s made from it) share its time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: Millis) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(at)))
    }

    /// The [`Clock`] that reads this one.
    pub fn clock(&self) -> Clock {
        Clock(Some(self.clone()))
    }

    /// The time it stands at.
    pub fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: Millis) {
        self.0.store(at, Ordering::SeqCst);
    }

    /// Moves the clock `by` ahead; returns the new time.
    pub fn advance(&self, by: Duration) -> Millis {
        let by = duration_millis(by);
        let before = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |at| {
                Some(at.saturating_add(by))
            })
            .unwrap_or_else(|at| at);
        before.saturating_add(by)
    }
}

/// Formats [`Millis`] as UTC RFC 3339 ending in `Z`, the API's only time format.
pub fn format_millis(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => DateTime::<Utc>::UNIX_EPOCH.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// Where a job is in its life. The doc of each variant names who moves a job
/// out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Queued and waiting for a worker; a worker's claim moves it to running.
    Pending,
    /// Held by exactly one worker under a lease; the worker finishes it, a
    /// cancel stops it, or the reaper recovers it when the lease expires.
    Running,
    /// Finished successfully; terminal. Removed by retention cleanup.
    Completed,
    /// Failed with an error and no attempts left; terminal, restartable.
    Failed,
    /// Cancelled by a user; terminal, restartable.
    Cancelled,
    /// Waiting for its `scheduled_for` time (a delayed job or a retry after
    /// backoff); the scheduler makes it pending when due.
    Scheduled,
}

impl JobStatus {
    /// Every status, in the order statistics list them.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Scheduled,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The status as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Scheduled => "scheduled",
        }
    }

    /// True once the job can no longer change on its own: completed, failed
    /// or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that names no status.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown status '{0}' (expected one of pending, running, scheduled, completed, failed, cancelled)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// How far a running job has come, as its handler reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Fraction done, 0.0 to 1.0.
    pub fraction: f64,
    /// Items done so far, when the handler counts items.
    pub items_processed: Option<u64>,
    /// Items in all, when known.
    pub total_items: Option<u64>,
}

impl Progress {
    /// Clamps the fraction into 0..=1 (NaN becomes 0), so no handler can
    /// store a nonsensical value.
    pub fn clamped(self) -> Progress {
        let fraction = if self.fraction.is_nan() {
            0.0
        } else {
            self.fraction.clamp(0.0, 1.0)
        };
        Progress { fraction, ..self }
    }
}

/// A job as the store holds it. Timestamps are [`Millis`]; the API form is
/// [`JobView`].
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The configured job type that runs it.
    pub job_type: String,
    /// Served by remote workers (its type is declared `remote` in the
    /// configuration), so only a claim for remote workers of its type
    /// takes it; decided at submission and kept for the job's life.
    pub remote: bool,
    /// Whose job it is; the per-user limit counts by this.
    pub user_id: String,
    /// The value its type's per-key limit counts by (`[job_types.NAME]
    /// concurrency_key`, or the submission's own), resolved at submission.
    pub concurrency_key: Option<String>,
    /// Current status.
    pub status: JobStatus,
    /// Higher runs first within a user's queue.
    pub priority: i32,
    /// The job's input, a JSON object.
    pub parameters: Value,
    /// The handler's result once completed.
    pub result: Option<Value>,
    /// The error of the last failed attempt, or why it was cancelled.
    pub error: Option<String>,
    /// Reported progress.
    pub progress: Progress,
    /// Attempts started so far (an interruption by a lost worker gives its
    /// attempt back).
    pub attempts: u32,
    /// Attempts allowed before the job fails for good.
    pub max_attempts: u32,
    /// Times the job was recovered from a lost worker.
    pub interruptions: u32,
    /// Run time limit per attempt, if any.
    pub timeout_seconds: Option<f64>,
    /// When it was submitted.
    pub created_at: Millis,
    /// When a scheduled job becomes due.
    pub scheduled_for: Option<Millis>,
    /// When the current (or last) attempt started.
    pub started_at: Option<Millis>,
    /// When it reached a terminal status.
    pub completed_at: Option<Millis>,
    /// When it last changed.
    pub updated_at: Millis,
    /// The worker that holds it while running.
    pub worker_id: Option<String>,
    /// Bumped by every change, so watchers can order snapshots.
    pub revision: i64,
    /// Jobs that must complete before this one runs.
    pub depends_on: Vec<JobId>,
    /// How many of `depends_on` have not completed yet; while above 0 the
    /// job waits as `scheduled`.
    pub waiting_dependencies: u32,
    /// The dependency whose failure or cancellation cancelled this job.
    pub cancelled_by: Option<JobId>,
    /// The deadline to start by: a job still pending or scheduled then,
    /// never started, is cancelled with the error `expired`.
    pub expires_at: Option<Millis>,
    /// The schedule that stored it, and for which tick.
    pub schedule: Option<ScheduleTick>,
}

impl Job {
    /// What a claim does to a pending job: an attempt starts on `worker_id`
    /// at `now`. The Redis claim script returns jobs as they were and
    /// leaves this to its caller (the SQLite claim's `RETURNING` gives the
    /// row as it is).
    pub fn start_attempt(&mut self, worker_id: &str, now: Millis) {
        self.status = JobStatus::Running;
        self.started_at = Some(now);
        self.updated_at = now;
        self.worker_id = Some(worker_id.to_owned());
        self.attempts += 1;
        self.revision += 1;
        self.completed_at = None;
        self.error = None;
    }

    /// Seconds the current or last attempt has run, as of `now`.
    pub fn execution_time_seconds(&self, now: Millis) -> Option<f64> {
        let started = self.started_at?;
        let end = match self.status {
            JobStatus::Running => now,
            _ => self.completed_at.unwrap_or(now),
        };
        Some((end - started).max(0) as f64 / 1000.0)
    }

    /// The API form of the job as of `now`.
    pub fn view(&self, now: Millis) -> JobView {
        let progress = if self.status == JobStatus::Completed {
            1.0
        } else {
            self.progress.fraction
        };
        JobView {
            job_id: self.id,
            job_type: self.job_type.clone(),
            remote: self.remote,
            concurrency_key: self.concurrency_key.clone(),
            status: self.status,
            progress,
            created_at: format_millis(self.created_at),
            started_at: self.started_at.map(format_millis),
            completed_at: self.completed_at.map(format_millis),
            error: self.error.clone(),
            user_id: self.user_id.clone(),
            metrics: Metrics {
                execution_time_seconds: self.execution_time_seconds(now),
                items_processed: self.progress.items_processed,
                total_items: self.progress.total_items,
            },
            result: self.result.clone(),
            parameters: Some(self.parameters.clone()),
            priority: self.priority,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            interruptions: self.interruptions,
            timeout_seconds: self.timeout_seconds,
            scheduled_for: self.scheduled_for.map(format_millis),
            updated_at: format_millis(self.updated_at),
            worker_id: self.worker_id.clone(),
            depends_on: self.depends_on.clone(),
            waiting_dependencies: self.waiting_dependencies,
            cancelled_by: self.cancelled_by,
            expires_at: self.expires_at.map(format_millis),
            schedule: self.schedule.as_ref().map(|s| s.name.clone()),
            schedule_tick: self.schedule.as_ref().map(|s| format_millis(s.tick)),
        }
    }
}

impl Job {
    /// What a change of the job shows a watcher that has the whole job
    /// already (an SSE `job_update` after the first), as of `now`.
    pub fn update_view(&self, now: Millis) -> JobUpdate {
        JobUpdate {
            job_id: self.id,
            status: self.status,
            progress: if self.status == JobStatus::Completed {
                1.0
            } else {
                self.progress.fraction
            },
            metrics: Metrics {
                execution_time_seconds: self.execution_time_seconds(now),
                items_processed: self.progress.items_processed,
                total_items: self.progress.total_items,
            },
            error: self.error.clone(),
        }
    }
}

/// The fields of a job that change while it runs: the data of an SSE
/// `job_update` after the first, which carries the whole [`JobView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUpdate {
    /// The job's id.
    pub job_id: JobId,
    /// Its status.
    pub status: JobStatus,
    /// 0.0 to 1.0; 1.0 once completed.
    pub progress: f64,
    /// Timing and item counts.
    pub metrics: Metrics,
    /// The error, for failed (and cancelled) jobs.
    pub error: Option<String>,
}

/// The seed's `metrics` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Seconds the job has run; grows while it runs.
    #[serde(serialize_with = "serialize_rounded")]
    pub execution_time_seconds: Option<f64>,
    /// Items done, when the handler reports them.
    pub items_processed: Option<u64>,
    /// Items in all, when the handler reports them.
    pub total_items: Option<u64>,
}

fn serialize_rounded<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_f64((v * 1000.0).round() / 1000.0),
        None => s.serialize_none(),
    }
}

/// The job object of `GET /status/{id}`: the seed's fields first, then the
/// ones jobd adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The job's id.
    pub job_id: JobId,
    /// Its job type.
    pub job_type: String,
    /// True for a job served by remote workers; left out when false, so a
    /// built-in job's object is the seed's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remote: bool,
    /// The key its type's per-key limit counts by; left out when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// Its status.
    pub status: JobStatus,
    /// 0.0 to 1.0; 1.0 once completed.
    pub progress: f64,
    /// Submission time, UTC RFC 3339.
    pub created_at: String,
    /// Start of the current or last attempt.
    pub started_at: Option<String>,
    /// When it reached a terminal status.
    pub completed_at: Option<String>,
    /// The error, for failed (and cancelled) jobs.
    pub error: Option<String>,
    /// Whose job it is.
    pub user_id: String,
    /// Timing and item counts.
    pub metrics: Metrics,
    /// The handler's result, once completed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<Value>,
    /// The job's input; left out of listings unless asked for
    /// (`include=parameters`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parameters: Option<Value>,
    /// Priority within the user's queue.
    pub priority: i32,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Recoveries from lost workers.
    pub interruptions: u32,
    /// Per-attempt time limit.
    pub timeout_seconds: Option<f64>,
    /// When a scheduled job becomes due.
    pub scheduled_for: Option<String>,
    /// Last change.
    pub updated_at: String,
    /// The worker holding it while it runs.
    pub worker_id: Option<String>,
    /// Jobs that must complete first.
    #[serde(default)]
    pub depends_on: Vec<JobId>,
    /// Dependencies not completed yet (the reason a job waits as scheduled).
    #[serde(default)]
    pub waiting_dependencies: u32,
    /// The dependency whose failure or cancellation cancelled this job.
    #[serde(default)]
    pub cancelled_by: Option<JobId>,
    /// The deadline to start by (`expires_in_seconds`); left out when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The schedule that submitted it; left out when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule's tick it was submitted for; left out when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_tick: Option<String>,
}

/// A job to be created, as validated by the API.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The id it will have (time-ordered, [`new_job_id`]); given before it
    /// is stored so that jobs submitted together can depend on each other.
    pub id: JobId,
    /// The job type; known to the configuration.
    pub job_type: String,
    /// Served by remote workers: the API sets it from the configuration
    /// (`[job_types.NAME] remote = true`); the store keeps it and routes
    /// the job by it.
    pub remote: bool,
    /// Owner.
    pub user_id: String,
    /// The value its type's per-key limit counts by, if any.
    pub concurrency_key: Option<String>,
    /// Input, a JSON object.
    pub parameters: Value,
    /// Priority within the user's queue.
    pub priority: i32,
    /// Due time; `None` or past means pending at once.
    pub run_at: Option<Millis>,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Per-attempt time limit.
    pub timeout_seconds: Option<f64>,
    /// Jobs that must complete before this one runs.
    pub depends_on: Vec<JobId>,
    /// How long after submission the job must have started, if at all: the
    /// store adds it to the submission's own time to give
    /// [`Job::expires_at`], so the deadline and `created_at` share one clock
    /// reading.
    pub expires_in: Option<Millis>,
    /// The schedule's tick it is stored for: set by a store's
    /// `fire_schedule`, none otherwise.
    pub schedule: Option<ScheduleTick>,
}

/// A new job id: a UUID v7, so ids sort by creation time.
pub fn new_job_id() -> JobId {
    uuid::Uuid::now_v7()
}

impl NewJob {
    /// A job of `job_type` for `user_id` with a new id, empty parameters
    /// and the defaults of a submission that says nothing else: priority 0,
    /// due now, one attempt, no time limit, no dependencies, run by
    /// built-in workers.
    pub fn new(job_type: &str, user_id: &str) -> NewJob {
        NewJob {
            id: new_job_id(),
            job_type: job_type.to_owned(),
            remote: false,
            concurrency_key: None,
            user_id: user_id.to_owned(),
            parameters: Value::Object(serde_json::Map::new()),
            priority: 0,
            run_at: None,
            max_attempts: 1,
            timeout_seconds: None,
            depends_on: Vec::new(),
            expires_in: None,
            schedule: None,
        }
    }

    /// The job as a store keeps it once stored at `now` as `admission`
    /// says: the one place that knows a new job's first fields, so a store
    /// answers a submission without reading back what it wrote.
    pub fn stored(self, now: Millis, admission: Admission) -> Job {
        let (cancelled_by, error) = admission.cancelled.unzip();
        Job {
            id: self.id,
            job_type: self.job_type,
            remote: self.remote,
            user_id: self.user_id,
            concurrency_key: self.concurrency_key,
            status: admission.status,
            priority: self.priority,
            parameters: self.parameters,
            result: None,
            error,
            progress: Progress::default(),
            attempts: 0,
            max_attempts: self.max_attempts,
            interruptions: 0,
            timeout_seconds: self.timeout_seconds,
            created_at: now,
            scheduled_for: self.run_at.filter(|at| *at > now),
            started_at: None,
            completed_at: cancelled_by.map(|_| now),
            updated_at: now,
            worker_id: None,
            revision: 1,
            depends_on: self.depends_on,
            waiting_dependencies: admission.waiting_dependencies,
            cancelled_by,
            expires_at: self.expires_in.map(|after| now.saturating_add(after)),
            schedule: self.schedule,
        }
    }
}

/// What a store decided about a new job as it stored it.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Its first status: pending, scheduled (due later or waiting for
    /// dependencies) or cancelled.
    pub status: JobStatus,
    /// Its dependencies not yet completed.
    pub waiting_dependencies: u32,
    /// The dependency that had already failed or been cancelled, and the
    /// error this job is cancelled with (its status is then cancelled).
    pub cancelled: Option<(JobId, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_for_every_reader() {
        let manual = ManualClock::new(1_000);
        let clock = manual.clock();
        assert_eq!(clock.clone().now(), 1_000);
        assert_eq!(manual.advance(Duration::from_millis(500)), 1_500);
        assert_eq!(clock.now(), 1_500);
        manual.set(42);
        assert_eq!(clock.now(), 42);
        assert_eq!(manual.advance(Duration::MAX), Millis::MAX, "saturates");
        assert!(Clock::system().now() > 1_700_000_000_000);
    }

    #[test]
    fn status_round_trips_through_its_string() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>().ok(), Some(status));
        }
        assert!("done".parse::<JobStatus>().is_err());
    }

    #[test]
    fn timestamps_are_utc_with_z() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn progress_is_clamped() {
        let p = Progress {
            fraction: f64::NAN,
            ..Progress::default()
        };
        assert_eq!(p.clamped().fraction, 0.0);
        let p = Progress {
            fraction: 3.0,
            ..Progress::default()
        };
        assert_eq!(p.clamped().fraction, 1.0);
    }
}
