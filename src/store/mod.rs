//! The store interface: every job transition as one atomic, intention-named
//! operation whose precondition the backend enforces (claim only pending
//! jobs, finish only with the claim's token, cancel only what is not
//! terminal, ...). Backends: [`sqlite`] (embedded, the default) and
//! [`redis`] (one queue for many machines).

mod audit;
mod job_log;
pub(crate) mod limits;
pub mod redis;
pub mod sqlite;
mod vanished;

pub use audit::{AuditPage, AuditQuery};
pub use job_log::{LogEntry, LogLine, LogPage, LogStream, MAX_LOG_LINE_BYTES};
pub(crate) use limits::key_scope;
pub use limits::rate_scope;
pub use limits::{ClaimLimits, RateLimit, TypeLimits};

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::events::JobWatch;
use crate::model::audit::AuditEntry;
use crate::model::{
    ApiToken, Clock, Debounce, IdempotencyKey, Job, JobId, JobStatus, Millis, NewJob, Progress,
    Schedule, ScheduleOrigin, ScheduleSpec, ScheduleTick, Submitted,
};

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The job's status forbids the operation (cancel of a terminal job,
    /// restart of a job that did not fail or get cancelled).
    #[error("job {id} is {current}")]
    Conflict {
        /// The job.
        id: JobId,
        /// Its status now.
        current: JobStatus,
    },
    /// The caller's claim on the job is gone: the job was cancelled or
    /// recovered from this worker. Its update is discarded (fencing).
    #[error("claim on job {0} was lost")]
    ClaimLost(JobId),
    /// A submitted job names a dependency that does not exist.
    #[error("dependency {0} not found")]
    UnknownDependency(JobId),
    /// The submission or restart would leave a user with more queued jobs
    /// (pending or scheduled) than the store's quota allows; nothing was
    /// stored or changed.
    #[error("user {user_id} would pass the quota of {limit} queued jobs")]
    QuotaExceeded {
        /// The user.
        user_id: String,
        /// The quota: queued jobs per user, at most.
        limit: u64,
    },
    /// An idempotent submission's key holds a job stored for another body
    /// (maps to 422); nothing was stored.
    #[error("idempotency key {key} was used for another request (job {job_id})")]
    IdempotencyMismatch {
        /// The key.
        key: String,
        /// The job the key holds.
        job_id: JobId,
    },
    /// The backend failed or is unreachable (maps to 503: try again).
    #[error("store unavailable in {op}")]
    Unavailable {
        /// The operation that failed (a `Store` method's name).
        op: &'static str,
        /// The backend's own error.
        #[source]
        source: ErrorSource,
    },
    /// The store holds data the backend cannot decode (a corrupt row or
    /// hash field), or answered what the operation cannot produce: a fault
    /// on the server's side that retrying will not cure (maps to 500).
    #[error("corrupt stored data in {op}")]
    Corrupt {
        /// The operation that met it (a `Store` method's name).
        op: &'static str,
        /// What could not be decoded, and why.
        #[source]
        source: ErrorSource,
    },
}

/// The underlying cause of a store failure.
pub type ErrorSource = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// The backend failed in `op`.
    pub fn unavailable(op: &'static str, source: impl Into<ErrorSource>) -> StoreError {
        StoreError::Unavailable {
            op,
            source: source.into(),
        }
    }

    /// Stored data met in `op` cannot be decoded.
    pub fn corrupt(op: &'static str, source: impl Into<ErrorSource>) -> StoreError {
        StoreError::Corrupt {
            op,
            source: source.into(),
        }
    }

    /// `backend` failed, in an operation its caller names ([`during`]).
    pub(crate) fn backend_unavailable(
        backend: &'static str,
        source: impl Into<ErrorSource>,
    ) -> StoreError {
        StoreError::unavailable(backend, BackendError::new(backend, source))
    }

    /// `backend` holds data it cannot decode, met in an operation its
    /// caller names ([`during`]).
    pub(crate) fn backend_corrupt(
        backend: &'static str,
        source: impl Into<ErrorSource>,
    ) -> StoreError {
        StoreError::corrupt(backend, BackendError::new(backend, source))
    }

    /// Names the operation on a failure noticed below it (where only the
    /// backend is known): the `Store` method's name replaces it.
    fn during(self, name: &'static str) -> StoreError {
        match self {
            StoreError::Unavailable { source, .. } => StoreError::unavailable(name, source),
            StoreError::Corrupt { source, .. } => StoreError::corrupt(name, source),
            other => other,
        }
    }
}

/// A backend's own error under the backend's name: the first link of a
/// store failure's source chain (`... in get: redis: broken pipe`).
#[derive(Debug, thiserror::Error)]
#[error("{backend}")]
pub struct BackendError {
    /// `sqlite` or `redis`.
    pub backend: &'static str,
    /// What the backend (its client library, its decoder) said.
    #[source]
    pub source: ErrorSource,
}

impl BackendError {
    fn new(backend: &'static str, source: impl Into<ErrorSource>) -> BackendError {
        BackendError {
            backend,
            source: source.into(),
        }
    }
}

/// Runs one store operation, naming it on its failures: each backend's
/// `Store` methods wrap their body in this.
pub(crate) async fn during<T>(
    name: &'static str,
    work: impl std::future::Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    work.await.map_err(|e| e.during(name))
}

/// An error with its sources, outermost first, for a log line:
/// `store unavailable in claim: redis: connection refused`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        // Some errors repeat their source in their own words; once will do.
        if said != last {
            text.push_str(": ");
            text.push_str(&said);
        }
        last = said;
        source = cause.source();
    }
    text
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A worker's hold on one running job: the job id plus the token its claim
/// was given. Every update a worker makes carries it; the store rejects an
/// update whose token no longer matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimRef {
    /// The job.
    pub job_id: JobId,
    /// The claim's token.
    pub token: Uuid,
}

/// A job a worker has claimed, with its token.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The job as claimed (status running).
    pub job: Job,
    /// The claim to quote on every update.
    pub claim: ClaimRef,
}

/// Which jobs a worker runs, and so which jobs its claims may take: a job
/// goes only to a worker that can run it (routing by job type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Serves {
    /// Every job not served by remote workers: the built-in workers of
    /// `jobd serve` and `jobd worker`.
    #[default]
    BuiltIn,
    /// Remote jobs ([`Job::remote`]) of these types only: a worker outside
    /// the process, over the HTTP worker protocol.
    Remote(Vec<String>),
}

impl Serves {
    /// Whether a worker serving this runs `job`.
    pub fn takes(&self, job: &Job) -> bool {
        match self {
            Serves::BuiltIn => !job.remote,
            Serves::Remote(types) => job.remote && types.contains(&job.job_type),
        }
    }
}

/// A rate limit's open window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// When it closes (and jobs waiting for it may start).
    pub closes_at: Millis,
    /// Jobs started in it.
    pub started: u64,
}

/// What a claim asks for.
#[derive(Debug, Clone)]
pub struct ClaimParams {
    /// The claiming worker.
    pub worker_id: String,
    /// The jobs it may take: a built-in worker's claim never takes a
    /// remote job, a remote worker's only remote jobs of its types. The
    /// limits count every running job whatever its route.
    pub serves: Serves,
    /// How many jobs this worker can take now.
    pub max_jobs: usize,
    /// Jobs running at once across all workers, at most.
    pub global_max: usize,
    /// Jobs running at once per user, at most.
    pub per_user_max: usize,
    /// Limits per job type and user weights (shared, from the
    /// configuration).
    pub limits: std::sync::Arc<ClaimLimits>,
    /// The lease the claim grants, from the claim's time; the worker's
    /// heartbeat renews it.
    pub lease: Duration,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The handler succeeded with this result.
    Completed {
        /// The result, any JSON value.
        result: Value,
    },
    /// The handler failed. With `retry_at`, the job is scheduled again then;
    /// without, it fails for good.
    Failed {
        /// What went wrong.
        error: String,
        /// When to try again, if attempts are left.
        retry_at: Option<Millis>,
    },
}

/// One attempt's end, for [`Store::finish_and_claim`].
#[derive(Debug, Clone)]
pub struct Finish {
    /// The claim.
    pub claim: ClaimRef,
    /// How it ended.
    pub outcome: Outcome,
}

/// What one [`Store::finish_and_claim`] did.
#[derive(Debug, Default)]
pub struct Exchanged {
    /// One result per attempt, in order: the job as it ended, or why not
    /// (the claim was lost).
    pub finished: Vec<StoreResult<Job>>,
    /// The jobs claimed afterwards.
    pub claimed: Vec<Claimed>,
}

/// Filters and page of a job listing, newest first.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only this user's jobs.
    pub user_id: Option<String>,
    /// Only this job type.
    pub job_type: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Only jobs older than this one (the previous page's last id).
    pub before: Option<JobId>,
    /// Read each job's `parameters`; else they are left `Null` and not
    /// read from the store (a summary listing stays small whatever the
    /// jobs' inputs weigh).
    pub with_parameters: bool,
    /// Read each job's `result`; else it is left `None`, unread.
    pub with_result: bool,
    /// Bytes of `parameters`, `result` and `error` (as stored) a page may
    /// carry: the page ends before the job that would pass it, with its
    /// `next_cursor` there, and always holds at least one job. The store
    /// stops reading at that point, so a page's size is bounded where it
    /// is built, not after.
    pub max_bytes: usize,
}

impl Default for ListQuery {
    /// Every job, summaries, no byte bound, a page of 50.
    fn default() -> Self {
        Self {
            status: None,
            user_id: None,
            job_type: None,
            limit: 50,
            before: None,
            with_parameters: false,
            with_result: false,
            max_bytes: usize::MAX,
        }
    }
}

/// A page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<JobId>,
}

/// A worker as it registers and heartbeats.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    /// Unique per worker process run.
    pub worker_id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// When the worker started.
    pub started_at: Millis,
    /// Jobs it can run at once.
    pub concurrency: usize,
    /// The jobs it runs (what `/status/{id}/why` checks a waiting job's
    /// type against).
    pub serves: Serves,
}

/// A worker as the registry holds it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRecord {
    /// What the worker registered.
    #[serde(flatten)]
    pub info: WorkerInfo,
    /// Its last heartbeat.
    pub last_heartbeat: Millis,
    /// Jobs it holds now.
    pub running_jobs: Vec<JobId>,
}

/// What the lease reaper is told. Running jobs whose lease ended before
/// the store's clock says now are recovered.
#[derive(Debug, Clone)]
pub struct RecoverParams {
    /// A job interrupted more often than this fails as "worker lost".
    pub max_interruptions: u32,
    /// Worker registrations silent for longer than this are removed.
    pub stale_worker_after: Duration,
    /// Workers known to be dead (their process is gone): their jobs are
    /// recovered now, whatever their leases, and their registrations
    /// removed.
    pub dead_workers: Vec<String>,
}

/// What the reaper did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoverReport {
    /// Jobs put back to pending.
    pub requeued: Vec<JobId>,
    /// Jobs failed as "worker lost".
    pub failed: Vec<JobId>,
    /// Worker registrations removed.
    pub stale_workers_removed: usize,
}

/// What retention cleanup is told (the pass is recorded at the store's
/// clock's now).
#[derive(Debug, Clone)]
pub struct CleanupParams {
    /// Completed jobs finished longer ago than this are deleted.
    pub completed_retention: Duration,
    /// Failed and cancelled jobs finished longer ago than this are deleted.
    pub failed_retention: Duration,
    /// Audit entries older than this are deleted.
    pub audit_retention: Duration,
}

/// What cleanup did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    /// Jobs deleted.
    pub jobs_deleted: usize,
    /// Audit entries deleted.
    pub audit_deleted: usize,
    /// API tokens deleted: expired or revoked longer than the failed
    /// jobs' retention ago.
    pub tokens_deleted: usize,
    /// Bytes the store gave back to the file system (SQLite: the free
    /// pages truncated off its file; always 0 on Redis).
    pub bytes_released: u64,
}

/// Exact counts and registry facts for `/queue/stats`.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// Jobs per status; every status is present.
    pub counts: Vec<(JobStatus, u64)>,
    /// Workers that heartbeat within the active window.
    pub active_workers: usize,
    /// Registered workers silent past the active window (not yet removed).
    pub stale_workers: usize,
    /// When the last cleanup pass ran, by any process.
    pub last_cleanup: Option<Millis>,
}

/// How many jobs ever ended in each terminal status, across every process
/// sharing the store: the jobs in that status now plus those that left it
/// (deleted by cleanup, or restarted). Never goes down while the store
/// keeps its data, so it can be exported as a Prometheus counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FinishedTotals {
    /// Jobs that completed.
    pub completed: u64,
    /// Jobs that failed for good (retries scheduled are not failures).
    pub failed: u64,
    /// Jobs that were cancelled.
    pub cancelled: u64,
}

/// Change the trait, change the suite (tests/it/store_contract/).
///
/// The atomic operations jobd needs from a backend. Object-safe, so the
/// backend is picked at run time (`Arc<dyn Store>`).
///
/// Every successful write notifies the process's [`crate::events::EventBus`]
/// (the backend owns that, since only it sees writes made by other
/// processes).
///
/// Every operation takes its time from the store's [`Clock`], read once.
///
/// The per-user quota of queued jobs is the API's policy, given to a
/// backend when it is opened (`max_queued_per_user`; `None` for none): a
/// worker process, which never submits, opens its store without one.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `redis`, as `/queue/stats` reports it.
    fn kind(&self) -> &'static str;

    /// The clock every operation takes its time from; callers computing
    /// times for the store (a retry's `retry_at`) read it too.
    fn clock(&self) -> &Clock;

    /// Checks that the backend answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Checks that the backend takes a write: one tiny write of its own
    /// bookkeeping, which fails when the store refuses writes (a full disk,
    /// a Redis out of memory under `noeviction`) though reads still work.
    async fn probe_write(&self) -> StoreResult<()>;

    /// Stores a new job: pending, or scheduled when `run_at` is in the
    /// future or it waits for dependencies. Refused as
    /// [`Store::submit_all`] refuses.
    async fn submit(&self, job: NewJob) -> StoreResult<Job> {
        let mut stored = self.submit_all(vec![job]).await?;
        stored
            .pop()
            .ok_or_else(|| StoreError::corrupt("submit", "the store stored no job"))
    }

    /// Stores new jobs, all or none, in order: a job may depend on jobs
    /// stored before or earlier in `jobs` (a chain, such as the document
    /// pipeline). An unknown dependency stores nothing.
    ///
    /// The per-user quota the store was opened with (queued jobs, that is
    /// pending or scheduled, per user, across every process sharing the
    /// store) is checked in the same atomic step: if the call would leave
    /// any of its users above it, nothing is stored and the answer is
    /// [`StoreError::QuotaExceeded`]. A job cancelled at once (its
    /// dependency already failed) does not count.
    async fn submit_all(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Job>>;

    /// Stores `job` unless a job of its user holds the idempotency key
    /// `key` (submitted less than `key.ttl_millis` ago and still in the
    /// store): then answers that job, whatever its status, when the
    /// fingerprints match, and [`StoreError::IdempotencyMismatch`] when they
    /// do not, storing nothing. Check and store are one atomic step: of
    /// any number of concurrent calls with one key, on any process, exactly
    /// one stores a job. The quota applies as in [`Store::submit_all`].
    async fn submit_once(&self, job: NewJob, key: &IdempotencyKey) -> StoreResult<Submitted>;

    /// Stores `job` debounced under `debounce` (scoped to its user and job
    /// type): if the key's job is still scheduled and has not started (no
    /// attempt yet), that job takes `job`'s parameters, priority, attempts,
    /// time limit and deadline (`expires_at`), is due at [`Debounce::due`] and is answered as
    /// [`Submitted::Existing`]; else `job` is stored scheduled for
    /// [`Debounce::first_due`] (its own `run_at` is ignored), the key now
    /// holding it. Check and change are one atomic step: of any number of
    /// concurrent calls with one key, on any process, at most one stores a
    /// job while the key's job waits. The quota applies to a stored job as
    /// in [`Store::submit_all`]. `job` must have no dependencies.
    async fn submit_debounced(&self, job: NewJob, debounce: &Debounce) -> StoreResult<Submitted>;

    /// Reads one job.
    async fn get(&self, id: JobId) -> StoreResult<Job>;

    /// Which of `ids` the store does not hold, in one round trip.
    async fn missing(&self, ids: &[JobId]) -> StoreResult<Vec<JobId>>;

    /// Lists jobs newest first. A page may hold fewer than `limit` jobs and
    /// still have a next one (a backend may bound the work of one call).
    async fn list(&self, query: &ListQuery) -> StoreResult<ListPage>;

    /// Starts watching a job in this process and reads it: every change
    /// made after the read, by any process, arrives on the watch (a
    /// backend that announces changes only for watched jobs is told first).
    async fn watch(&self, id: JobId) -> StoreResult<(JobWatch, Job)>;

    /// Atomically moves up to `max_jobs` pending jobs to running for this
    /// worker, never exceeding the global or per-user limit, serving users
    /// round-robin and, within a user, by priority then FIFO. Due scheduled
    /// jobs are promoted first.
    async fn claim(&self, params: &ClaimParams) -> StoreResult<Vec<Claimed>>;

    /// Records progress of a running job, if the claim still holds.
    async fn report_progress(&self, claim: ClaimRef, progress: Progress) -> StoreResult<Job>;

    /// Ends the attempt, if the claim still holds: completed, failed, or
    /// scheduled for a retry.
    async fn finish(&self, claim: ClaimRef, outcome: Outcome) -> StoreResult<Job>;

    /// Ends many attempts and then, given `refill`, claims jobs as
    /// [`Store::claim`] does, in one step: a busy worker's single round trip
    /// per batch, the slots the attempts free taken again at once. Each
    /// ended attempt's job is returned as the store now holds it.
    async fn finish_and_claim(
        &self,
        items: &[Finish],
        refill: Option<&ClaimParams>,
    ) -> StoreResult<Exchanged>;

    /// Gives claimed jobs back to the queue without spending an attempt
    /// (graceful shutdown). Claims no longer held are skipped.
    async fn release(&self, claims: &[ClaimRef]) -> StoreResult<()>;

    /// Cancels a job that is not terminal; a running job loses its claim.
    async fn cancel(&self, id: JobId) -> StoreResult<Job>;

    /// Puts a failed or cancelled job back to pending, with its progress,
    /// error and attempts reset, and `parameters` replacing its own if given.
    /// The restarted job counts against its user's quota: when the user
    /// already has as many queued jobs as the quota allows, nothing changes
    /// and the answer is [`StoreError::QuotaExceeded`] (checked after the
    /// job's own status, so a job that cannot restart is still a conflict).
    /// The dependents a restart revives are not checked: they were counted
    /// when submitted.
    async fn restart(&self, id: JobId, parameters: Option<Value>) -> StoreResult<Job>;

    /// Registers or refreshes a worker and extends the lease of the jobs it
    /// holds to `lease` from now. Returns the held jobs whose claim is gone
    /// (cancelled or recovered), which the worker must stop.
    async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        held: &[ClaimRef],
        lease: Duration,
    ) -> StoreResult<Vec<JobId>>;

    /// Removes a worker's registration (clean shutdown).
    async fn unregister_worker(&self, worker_id: &str) -> StoreResult<()>;

    /// Cancels the jobs past their deadline to start by (`expires_at`) that
    /// are still pending or scheduled and never started, with the error
    /// `expired`; their waiting dependents are cancelled as for any
    /// cancellation. Returns the expired jobs (a bounded number per call).
    /// Every claim does the same first, so no claim starts such a job.
    async fn expire_due(&self) -> StoreResult<Vec<Job>>;

    /// Makes scheduled jobs whose time has come pending. Returns how many.
    async fn promote_due(&self) -> StoreResult<usize>;

    /// Recovers running jobs whose lease expired and removes stale workers.
    async fn recover_expired(&self, params: &RecoverParams) -> StoreResult<RecoverReport>;

    /// Deletes terminal jobs past retention, audit entries past theirs,
    /// API tokens expired or revoked longer than the failed jobs' retention
    /// ago (and whatever else the backend keeps for a limited time), and
    /// records the pass.
    async fn cleanup(&self, params: &CleanupParams) -> StoreResult<CleanupReport>;

    /// Counts per status and registry facts. Workers that heartbeat within
    /// `active_within` are active, the others stale.
    async fn stats(&self, active_within: Duration) -> StoreResult<StoreStats>;

    /// The terminal-status totals, read in one consistent step.
    async fn finished_totals(&self) -> StoreResult<FinishedTotals>;

    /// The registered workers.
    async fn workers(&self) -> StoreResult<Vec<WorkerRecord>>;

    /// The open rate window of a limit's scope (a job type, or a type and
    /// a key: [`rate_scope`]), if one is open: for `/why`.
    async fn rate_window(&self, scope: &str) -> StoreResult<Option<RateWindow>>;

    /// Time of the earliest scheduled job, so the scheduler can sleep until it.
    async fn next_due(&self) -> StoreResult<Option<Millis>>;

    /// Appends lines to a running job's log, if the claim still holds
    /// (else [`StoreError::ClaimLost`] and nothing is written), stamped with
    /// the store's clock and the job's attempt, numbered on from its last
    /// line. The log is then cut to `max_bytes` of line text, oldest lines
    /// first, in the same atomic step. Tells this process's bus
    /// ([`crate::events::EventBus::log_appended`]).
    async fn append_log(
        &self,
        claim: ClaimRef,
        lines: &[LogLine],
        max_bytes: usize,
    ) -> StoreResult<()>;

    /// Reads up to `limit` lines of a job's log after line `after`, oldest
    /// first, and whether the job is terminal (read before the lines, so
    /// a terminal page holds every line the job will write).
    async fn read_log(&self, id: JobId, after: u64, limit: usize) -> StoreResult<LogPage>;

    /// Stores a new API token (ids are random and never reused).
    async fn create_token(&self, token: &ApiToken) -> StoreResult<()>;

    /// The token with this id, revoked and expired ones included.
    async fn token(&self, id: &str) -> StoreResult<Option<ApiToken>>;

    /// Every stored token, newest first.
    async fn tokens(&self) -> StoreResult<Vec<ApiToken>>;

    /// Marks a token revoked at the store's clock (a second revocation
    /// keeps the first time) and returns it; `None` for an unknown id.
    async fn revoke_token(&self, id: &str) -> StoreResult<Option<ApiToken>>;

    /// Appends entries to the audit log, all or none. An entry whose id
    /// is already there is not stored twice (a retried append).
    async fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<()>;

    /// Lists audit entries newest first (by id). A page may hold fewer
    /// than `limit` entries and still have a next one (a backend may bound
    /// the work of one call).
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<AuditPage>;

    /// Stores the schedule `name`: a new one, active from now; or, when
    /// `replace`, a new definition and origin for a stored one (its pause
    /// and ticks kept; its revision bumped only if something changed).
    /// Without `replace` a stored schedule is left as it is. Answers the
    /// schedule as stored and whether it is new.
    async fn put_schedule(
        &self,
        name: &str,
        spec: &ScheduleSpec,
        origin: ScheduleOrigin,
        replace: bool,
    ) -> StoreResult<(Schedule, bool)>;

    /// Every schedule, by name.
    async fn schedules(&self) -> StoreResult<Vec<Schedule>>;

    /// Pauses or resumes the schedule `name` (a resumed schedule owes no
    /// job for the ticks it was paused over); `None` if there is none.
    async fn pause_schedule(&self, name: &str, paused: bool) -> StoreResult<Option<Schedule>>;

    /// Deletes the schedule `name` (its jobs stay); whether there was one.
    async fn delete_schedule(&self, name: &str) -> StoreResult<bool>;

    /// Stores `job` for the schedule's tick, as one atomic step with the
    /// tick's claim: only if the schedule is at `revision`, not paused,
    /// and its last fired tick is before `tick.tick`, it records `tick`
    /// as fired with the job. Of any number of calls for one tick, on any
    /// process, at most one stores a job; `None` for the others. The job
    /// carries `tick` ([`Job::schedule`]). The quota applies as in
    /// [`Store::submit_all`].
    async fn fire_schedule(
        &self,
        tick: &ScheduleTick,
        revision: i64,
        job: NewJob,
    ) -> StoreResult<Option<Job>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_names_its_operation_and_keeps_its_source() {
        let failed: StoreResult<()> = during("claim", async {
            Err(StoreError::backend_unavailable(
                "redis",
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
            ))
        })
        .await;
        let Err(e) = failed else {
            panic!("the failure was lost")
        };
        assert!(
            matches!(e, StoreError::Unavailable { op: "claim", .. }),
            "{e:?}"
        );
        let source = std::error::Error::source(&e).expect("a source");
        let backend = source.downcast_ref::<BackendError>().expect("the backend");
        assert!(backend.source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(
            error_chain(&e),
            "store unavailable in claim: redis: refused"
        );
    }
}
