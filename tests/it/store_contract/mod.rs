//! The store contract: the judge of backend semantics. Every backend must
//! pass this one suite, instantiated per backend by `store_contract!`; a
//! behaviour the suite does not pin down is a behaviour the backends may
//! (and sooner or later will) disagree on. Change the `Store` trait, change
//! this suite.
//!
//! - [`transitions`]: every verb that changes a job, from every starting
//!   status (river's `riverdrivertest` loops over states the same way):
//!   what it returns, what the job becomes, what event this process hears.
//! - [`order`]: claim order, where promotion queues a job, listing and
//!   paging, retention.
//! - [`scenarios`]: concurrency, limits, fencing, recovery, dependencies.
//! - [`logs`]: per-job logs: appends under the claim, pages, the cap,
//!   retries and restarts, cleanup.
//! - [`quota`]: the per-user quota of queued jobs, checked in the
//!   submission's and the restart's atomic step.
//! - [`audit`]: the audit log: appends, pages newest first, filters,
//!   retention.
//! - [`debounce`]: debounced submission: collapse into the waiting job,
//!   its period and longest wait, a new job once it is due, racing
//!   processes.
//! - [`expiry`]: deadlines to start by: pending and scheduled jobs
//!   expire, running ones do not, dependents follow, claims skip them.
//! - [`idempotency`]: idempotent submission: one job per key, its
//!   lifetime, racing processes.
//! - [`schedules`]: schedules stored, replaced, paused, resumed and
//!   deleted; a tick fired once, from its revision, by racing processes.
//! - [`routing`]: which claims take a remote job, the limits they share,
//!   and the ways a remote job goes back to its own queue.
//!
//! A backend is given as a factory of handles: on the shared state (as
//! another process would open it) or on a fresh, empty one (so that a
//! table case sees only its own jobs). Every handle of a backend reads one
//! [`ManualClock`]: no test waits for time to pass, it advances the clock
//! (leases expire, scheduled jobs come due, jobs age past retention).

mod audit;
mod debounce;
mod expiry;
mod idempotency;
mod limits;
mod logs;
mod order;
mod quota;
mod routing;
mod scenarios;
mod schedules;
mod tokens;
mod transitions;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobd::events::EventBus;
use jobd::model::{Job, JobId, JobStatus, ManualClock, Millis, NewJob, now_millis};
use jobd::store::{ClaimParams, ClaimRef, Claimed, Outcome, RecoverParams, Store};
use serde_json::json;

use self::audit::*;
use self::debounce::*;
use self::expiry::*;
use self::idempotency::*;
use self::limits::*;
use self::logs::*;
use self::order::*;
use self::quota::*;
use self::routing::*;
use self::scenarios::*;
use self::schedules::*;
use self::tokens::*;
use self::transitions::*;

/// A store handle with the event bus it publishes to.
pub struct Handle {
    pub store: Arc<dyn Store>,
    pub bus: EventBus,
}

/// Opens handles on one shared store, or on fresh ones.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// One more handle on the shared store, with its own event bus.
    async fn open_with_bus(&self) -> Handle;

    /// A handle on a new, empty store of this backend (a new file, a new
    /// key prefix), with its own event bus.
    async fn fresh(&self) -> Handle;

    /// A handle on a new, empty store opened with a per-user quota of
    /// `max_queued_per_user` queued jobs, and a second handle on that same
    /// store (as another process would open it, with the same quota).
    async fn fresh_with_quota(&self, max_queued_per_user: u64) -> (Handle, Handle);

    /// The clock every handle reads, shared and fresh alike.
    fn clock(&self) -> &ManualClock;

    /// Moves every handle's clock `by` ahead.
    fn advance(&self, by: Millis) {
        self.clock().advance(span(by));
    }

    /// One more handle on the shared store.
    async fn open(&self) -> Arc<dyn Store> {
        self.open_with_bus().await.store
    }

    /// False when the backend could not be set up here (the test skips,
    /// loudly; CI makes that a failure instead).
    fn ready(&self) -> bool {
        true
    }
}

/// SQLite: handles are separate `SqliteStore`s on one file.
pub struct Sqlite {
    dir: tempfile::TempDir,
    /// The directories of fresh stores, kept until the test ends.
    fresh: Mutex<Vec<tempfile::TempDir>>,
    clock: ManualClock,
}

impl Sqlite {
    pub fn new() -> Sqlite {
        Sqlite {
            dir: tempfile::tempdir().unwrap(),
            fresh: Mutex::new(Vec::new()),
            clock: ManualClock::new(now_millis()),
        }
    }

    async fn open_dir(&self, dir: &std::path::Path, quota: Option<u64>) -> Handle {
        let bus = EventBus::new();
        let store = jobd::store::sqlite::SqliteStore::open(
            dir,
            jobd::config::Synchronous::Normal,
            bus.clone(),
            self.clock.clock(),
            quota,
        )
        .await
        .unwrap();
        Handle { store, bus }
    }
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    async fn open_with_bus(&self) -> Handle {
        self.open_dir(self.dir.path(), None).await
    }

    async fn fresh(&self) -> Handle {
        let dir = tempfile::tempdir().unwrap();
        let handle = self.open_dir(dir.path(), None).await;
        self.fresh.lock().unwrap().push(dir);
        handle
    }

    async fn fresh_with_quota(&self, max_queued_per_user: u64) -> (Handle, Handle) {
        let dir = tempfile::tempdir().unwrap();
        let one = self.open_dir(dir.path(), Some(max_queued_per_user)).await;
        let two = self.open_dir(dir.path(), Some(max_queued_per_user)).await;
        self.fresh.lock().unwrap().push(dir);
        (one, two)
    }
}

/// Redis: handles are separate `RedisStore`s on one server and prefix.
pub struct Redis {
    server: Option<crate::support::RedisServer>,
    prefix: String,
    clock: ManualClock,
}

impl Redis {
    pub fn new() -> Redis {
        Redis {
            server: crate::support::RedisServer::start(),
            prefix: new_prefix(),
            clock: ManualClock::new(now_millis()),
        }
    }

    async fn open_prefix(&self, prefix: &str, quota: Option<u64>) -> Handle {
        let server = self.server.as_ref().expect("checked by the caller");
        let bus = EventBus::new();
        let store = jobd::store::redis::RedisStore::open(
            &server.url,
            prefix,
            bus.clone(),
            ORPHANED_LOCK_AFTER,
            self.clock.clock(),
            quota,
        )
        .await
        .unwrap();
        Handle { store, bus }
    }
}

fn new_prefix() -> String {
    format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

#[async_trait::async_trait]
impl Backend for Redis {
    fn ready(&self) -> bool {
        self.server.is_some()
    }

    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    async fn open_with_bus(&self) -> Handle {
        self.open_prefix(&self.prefix, None).await
    }

    async fn fresh(&self) -> Handle {
        self.open_prefix(&new_prefix(), None).await
    }

    async fn fresh_with_quota(&self, max_queued_per_user: u64) -> (Handle, Handle) {
        let prefix = new_prefix();
        let one = self.open_prefix(&prefix, Some(max_queued_per_user)).await;
        let two = self.open_prefix(&prefix, Some(max_queued_per_user)).await;
        (one, two)
    }
}

pub const SECOND: Millis = 1_000;

/// The Redis store's orphaned-lock age in the contract suite (the default).
const ORPHANED_LOCK_AFTER: Duration = Duration::from_secs(600);
pub const HOUR: Millis = 3_600 * SECOND;
pub const DAY: Millis = 24 * HOUR;

/// The lease every fixture claim grants.
pub const LEASE: Millis = 60 * SECOND;

/// `ms` as a duration (for the store's parameters).
pub fn span(ms: Millis) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// How long a test waits for an event before failing.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(5);

pub fn new_job(user: &str) -> NewJob {
    NewJob::new("noop", user)
}

pub fn dependent(user: &str, on: &[JobId]) -> NewJob {
    NewJob {
        depends_on: on.to_vec(),
        ..new_job(user)
    }
}

pub fn claim_params(worker: &str, max_jobs: usize) -> ClaimParams {
    ClaimParams {
        worker_id: worker.into(),
        serves: jobd::store::Serves::BuiltIn,
        max_jobs,
        global_max: 1000,
        per_user_max: 1000,
        limits: Default::default(),
        lease: span(LEASE),
    }
}

/// A recovery allowing `max_interruptions` that removes no worker
/// registration.
pub fn recover_params(max_interruptions: u32) -> RecoverParams {
    RecoverParams {
        max_interruptions,
        stale_worker_after: Duration::MAX,
        dead_workers: Vec::new(),
    }
}

pub async fn claim_one(store: &dyn Store) -> Claimed {
    let mut claimed = store.claim(&claim_params("w", 1)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    claimed.remove(0)
}

pub async fn claim_only(store: &dyn Store, expected: JobId) -> Claimed {
    let claimed = claim_one(store).await;
    assert_eq!(claimed.job.id, expected);
    claimed
}

/// The count of one status in `stats`.
pub async fn count(store: &dyn Store, status: JobStatus) -> u64 {
    let stats = store.stats(Duration::ZERO).await.unwrap();
    stats.counts.iter().find(|(s, _)| *s == status).unwrap().1
}

/// Where a fixture job starts. Every [`JobStatus`] is here, `scheduled` in
/// both of its forms (waiting for its time, waiting for a dependency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Submitted, queued.
    Pending,
    /// Submitted with `run_at` an hour ahead.
    ScheduledByTime,
    /// Submitted depending on a job that is itself scheduled a day ahead.
    WaitingForDependency,
    /// Claimed by worker `w`, lease [`LEASE`].
    Running,
    /// Claimed, then completed with result `"done"`.
    Completed,
    /// Claimed, then failed for good with error `"boom"`.
    Failed,
    /// Claimed, then cancelled (so its claim is one a cancel took away).
    Cancelled,
}

impl Start {
    pub const ALL: [Start; 7] = [
        Start::Pending,
        Start::ScheduledByTime,
        Start::WaitingForDependency,
        Start::Running,
        Start::Completed,
        Start::Failed,
        Start::Cancelled,
    ];

    pub fn status(self) -> JobStatus {
        match self {
            Start::Pending => JobStatus::Pending,
            Start::ScheduledByTime | Start::WaitingForDependency => JobStatus::Scheduled,
            Start::Running => JobStatus::Running,
            Start::Completed => JobStatus::Completed,
            Start::Failed => JobStatus::Failed,
            Start::Cancelled => JobStatus::Cancelled,
        }
    }
}

/// The worker id fixture claims use.
pub const FIXTURE_WORKER: &str = "w";

/// Drives a fresh job into `start` with the public operations only, in a
/// store that holds no other claimable job. Returns the job as `get` reads
/// it and the claim it was (or is still) held under, if it was ever
/// claimed.
pub async fn job_in(store: &dyn Store, start: Start) -> (Job, Option<ClaimRef>) {
    let now = store.clock().now();
    let mut claim = None;
    let id = match start {
        Start::Pending => store.submit(new_job("u")).await.unwrap().id,
        Start::ScheduledByTime => {
            let new = NewJob {
                run_at: Some(now + HOUR),
                ..new_job("u")
            };
            store.submit(new).await.unwrap().id
        }
        Start::WaitingForDependency => {
            let blocker = NewJob {
                run_at: Some(now + DAY),
                ..new_job("blocker")
            };
            let blocker = store.submit(blocker).await.unwrap();
            store
                .submit(dependent("u", &[blocker.id]))
                .await
                .unwrap()
                .id
        }
        Start::Running | Start::Completed | Start::Failed | Start::Cancelled => {
            let id = store.submit(new_job("u")).await.unwrap().id;
            let claimed = store.claim(&claim_params(FIXTURE_WORKER, 1)).await.unwrap();
            assert_eq!(claimed.len(), 1, "the fixture's job is the only one");
            assert_eq!(claimed[0].job.id, id);
            claim = Some(claimed[0].claim);
            let outcome = match start {
                Start::Completed => Some(Outcome::Completed {
                    result: json!("done"),
                }),
                Start::Failed => Some(Outcome::Failed {
                    error: "boom".into(),
                    retry_at: None,
                }),
                _ => None,
            };
            if let Some(outcome) = outcome {
                store.finish(claimed[0].claim, outcome).await.unwrap();
            }
            if start == Start::Cancelled {
                store.cancel(id).await.unwrap();
            }
            id
        }
    };
    let job = store.get(id).await.unwrap();
    assert_eq!(job.status, start.status(), "fixture {start:?}");
    (job, claim)
}

/// What this process hears of one job: its watchers (through
/// `Store::watch`, as the API's long-polls do) and the all-jobs feed.
pub struct Listener {
    id: JobId,
    watch: jobd::events::JobWatch,
    feed: tokio::sync::broadcast::Receiver<Arc<Job>>,
    /// Every snapshot of this job the feed carried, in order.
    heard: Vec<Arc<Job>>,
}

impl Listener {
    pub async fn on(handle: &Handle, id: JobId) -> Listener {
        let (watch, _) = handle.store.watch(id).await.unwrap();
        Listener {
            id,
            watch,
            feed: handle.bus.subscribe_all(),
            heard: Vec::new(),
        }
    }

    fn drain_feed(&mut self) {
        use tokio::sync::broadcast::error::TryRecvError;
        loop {
            match self.feed.try_recv() {
                Ok(job) if job.id == self.id => self.heard.push(job),
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => panic!("the feed lagged in a test"),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// Waits until the job's watchers have `job` (its revision or a later
    /// one), and returns what they have.
    pub async fn watchers_get(&mut self, job: &Job) -> Arc<Job> {
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            if let Some(seen) = self.watch.latest().filter(|s| s.revision >= job.revision) {
                return seen;
            }
            let waited = tokio::time::timeout_at(deadline, self.watch.changed()).await;
            assert!(
                waited.is_ok(),
                "watchers of {} never heard revision {}",
                job.id,
                job.revision
            );
        }
    }

    /// Waits until the all-jobs feed carried `job` at its revision, and
    /// returns that snapshot.
    pub async fn feed_gets(&mut self, job: &Job) -> Arc<Job> {
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            self.drain_feed();
            if let Some(seen) = self.heard.iter().find(|s| s.revision == job.revision) {
                return seen.clone();
            }
            match tokio::time::timeout_at(deadline, self.feed.recv()).await {
                Ok(Ok(seen)) if seen.id == self.id => self.heard.push(seen),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("the all-jobs feed failed: {e}"),
                Err(_) => panic!(
                    "the all-jobs feed never carried {} at revision {} (heard {:?})",
                    job.id,
                    job.revision,
                    self.heard.iter().map(|s| s.revision).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Asserts that nothing newer than `job` was published or delivered
    /// (for a refused or no-op operation: it has returned, so anything it
    /// published is already on the bus).
    pub fn heard_nothing_after(&mut self, job: &Job) {
        self.drain_feed();
        assert!(
            self.heard.iter().all(|s| s.revision <= job.revision),
            "a refused operation published {:?}",
            self.heard.iter().map(|s| s.revision).collect::<Vec<_>>()
        );
        if let Some(seen) = self.watch.latest() {
            assert!(seen.revision <= job.revision, "watchers heard {seen:?}");
        }
    }
}

/// `JobStatus::ALL` is covered by [`Start::ALL`]: a new status fails here
/// until the tables learn it.
#[test]
fn every_status_is_a_starting_point() {
    let starts: HashSet<JobStatus> = Start::ALL.iter().map(|s| s.status()).collect();
    assert_eq!(starts, JobStatus::ALL.into_iter().collect::<HashSet<_>>());
}

/// Instantiates every contract test once per backend.
macro_rules! store_contract {
    ($($test:ident),* $(,)?) => {
        store_contract!(@backend sqlite, Sqlite::new(), $($test),*);
        store_contract!(@backend redis, Redis::new(), $($test),*);
    };
    (@backend $module:ident, $backend:expr, $($test:ident),*) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let backend = $backend;
                    if backend.ready() {
                        super::$test(&backend).await;
                    }
                }
            )*
        }
    };
}

store_contract!(
    // limits per type and key, rates, weights
    a_job_keeps_its_concurrency_key,
    the_per_key_limit_holds_and_other_keys_and_users_proceed,
    a_user_whose_next_job_waits_still_gets_its_others,
    the_type_limit_holds_across_users,
    the_rate_limit_opens_after_the_window,
    a_rate_per_key_counts_each_key_alone,
    waiting_jobs_come_back_on_release_cancel_and_recovery,
    a_waiting_jobs_cancel_after_its_turn_came_lets_the_next_run,
    weights_give_proportional_shares,
    the_quota_counts_waiting_jobs,
    jobs_waiting_under_a_removed_limit_run_without_it,
    a_cancelled_waiting_job_leaves_no_turn_behind,
    // scenarios
    every_job_is_claimed_exactly_once,
    claims_respect_both_limits,
    finishing_and_claiming_in_one_call_keeps_the_limits,
    updates_need_the_current_claim,
    terminal_jobs_only_move_by_restart,
    expired_leases_are_recovered_without_spending_an_attempt,
    heartbeats_extend_leases_and_report_lost_claims,
    a_dead_workers_jobs_are_recovered_at_once,
    release_puts_a_job_back_at_the_front_without_spending_an_attempt,
    dependencies_gate_cascade_and_revive,
    a_chain_is_submitted_all_or_nothing,
    what_submit_answers_is_what_is_stored,
    a_taken_id_refuses_the_whole_call,
    cleanup_removes_only_expired_terminal_jobs,
    finished_totals_count_every_end_and_never_go_down,
    an_ended_attempt_forgets_its_due_time,
    a_user_whose_queue_emptied_keeps_its_turn,
    a_lease_expires_when_the_clock_passes_it,
    // transitions: every verb from every starting status
    cancel_from_every_status,
    restart_from_every_status,
    release_from_every_status,
    finish_completed_from_every_status,
    finish_failed_with_retry_from_every_status,
    finish_failed_for_good_from_every_status,
    report_progress_from_every_status,
    claim_from_every_status,
    promote_due_from_every_status,
    recover_expired_from_every_status,
    recover_expired_as_worker_lost_from_every_status,
    submit_returns_what_is_stored,
    // order, listing, retention
    users_are_served_round_robin_least_recently_served_first,
    within_a_user_priority_then_fifo,
    promotion_queues_by_priority_then_due_time,
    a_released_job_keeps_its_place_in_the_queue,
    a_recovered_or_restarted_job_goes_to_the_back,
    listing_filters_newest_first,
    listing_pages_by_cursor,
    listing_reads_parameters_and_result_only_when_asked,
    listing_stops_at_its_byte_bound,
    missing_names_the_jobs_not_held,
    retention_deletes_terminal_jobs_by_age_per_status,
    finish_and_claim_returns_what_is_stored,
    a_job_due_earlier_is_queued_earlier,
    promotion_is_published_here,
    a_scheduled_job_comes_due_when_the_clock_reaches_it,
    a_job_outlives_its_retention_as_the_clock_moves,
    // routing by job type
    a_claim_takes_only_the_jobs_its_worker_serves,
    a_remote_claim_serves_users_round_robin,
    limits_are_shared_by_built_in_and_remote_claims,
    a_remote_job_goes_back_to_its_own_queue,
    the_registry_keeps_what_a_worker_serves,
    // the audit log
    audit_entries_are_listed_newest_first_in_pages,
    audit_listing_filters_by_actor_action_and_target,
    audit_retention_deletes_old_entries_as_the_clock_moves,
    // per-job logs
    log_lines_are_appended_numbered_and_read_in_pages,
    a_long_line_is_cut_and_many_lines_go_in_one_append,
    the_cap_drops_the_oldest_lines_and_numbers_go_on,
    a_lost_claim_writes_no_log,
    a_retry_and_a_restart_keep_earlier_attempts_lines,
    cleanup_deletes_a_jobs_log_with_it,
    // API tokens
    tokens_are_stored_listed_and_revoked_once,
    cleanup_deletes_tokens_that_ended_long_enough_ago,
    // the per-user quota of queued jobs
    the_quota_counts_pending_and_scheduled_jobs_of_each_user,
    a_chain_past_the_quota_stores_nothing,
    leaving_the_queue_frees_room_and_coming_back_takes_it,
    the_quota_holds_for_submissions_racing_from_two_processes,
    // idempotent submission
    a_key_stores_one_job_and_answers_it_to_repeats,
    a_key_holds_for_its_lifetime_only,
    a_key_past_its_lifetime_stores_a_new_job,
    racing_submissions_with_one_key_store_one_job,
    // debounced submission
    debounced_submissions_collapse_into_the_waiting_job,
    a_debounced_job_waits_no_longer_than_max_wait,
    once_the_debounced_job_is_due_the_key_stores_a_new_job,
    racing_debounced_submissions_store_one_job,
    // expiry
    pending_and_scheduled_jobs_expire_at_their_deadline,
    a_running_job_does_not_expire,
    an_expired_jobs_dependents_are_cancelled,
    a_claim_never_starts_a_job_past_its_deadline,
    // schedules
    schedules_are_stored_replaced_only_when_changed_and_deleted,
    a_tick_fires_once_from_its_revision,
    a_paused_schedule_fires_nothing_and_resumes_from_now,
    racing_fires_of_one_tick_store_one_job,
);
