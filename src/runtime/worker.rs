//! The worker runtime of one process: a claim loop that takes jobs only
//! into free slots, an executor task per job ([`super::executor`]), the
//! [`Completer`] that records outcomes in batches and claims the freed
//! slots' replacements in the same store call, and the heartbeat
//! ([`super::heartbeat`]) that keeps the process registered and its leases
//! alive. This module is the claimer and the wiring.
//!
//! Shutdown runs in two stages: stop claiming and let running jobs finish
//! within the grace period; then stop the rest (their handlers get the
//! cancel grace) and give them back to the queue without spending an
//! attempt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::completer::{Completer, Refill, Slot};
use super::executor::{self, ExecEnv};
use super::heartbeat::{self, Held};
use super::process::host_name;
use super::registry::Registry;
use crate::backoff::retry_delays;
use crate::config::Settings;
use crate::events::EventBus;
use crate::model::JobId;
use crate::store::{
    ClaimLimits, ClaimParams, ClaimRef, Claimed, Serves, Store, WorkerInfo, error_chain,
};

/// Longest idle wait between claim attempts; also bounds how late a due
/// scheduled job is noticed.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The claim loop's first pause after a failed claim.
const CLAIM_RETRY: Duration = Duration::from_millis(200);

/// The claim loop's pause after failed claims, at most.
const MAX_CLAIM_BACKOFF: Duration = Duration::from_secs(5);

/// What the claim loop, the completer, the heartbeat and the executors
/// share.
struct WorkerShared {
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    /// The limits of the configuration, built once for every claim.
    limits: Arc<ClaimLimits>,
    info: WorkerInfo,
    /// Fired at shutdown: claim nothing more.
    stop_claiming: CancellationToken,
    running: Mutex<HashMap<JobId, (ClaimRef, CancellationToken)>>,
    slots: Arc<Semaphore>,
    /// The last claim took all it asked for: more jobs are likely waiting,
    /// so recording outcomes also claims replacements.
    backlog: AtomicBool,
    jobs: TaskTracker,
    /// What every executor runs with; set once the completer exists.
    env: std::sync::OnceLock<Arc<ExecEnv>>,
}

impl WorkerShared {
    fn running(&self) -> MutexGuard<'_, HashMap<JobId, (ClaimRef, CancellationToken)>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn claim_for(&self, max_jobs: usize) -> ClaimParams {
        ClaimParams {
            worker_id: self.info.worker_id.clone(),
            serves: Serves::BuiltIn,
            max_jobs,
            global_max: self.settings.global_max_concurrent_jobs,
            per_user_max: self.settings.per_user_max_concurrent_jobs,
            limits: self.limits.clone(),
            lease: self.settings.lease_timeout,
        }
    }

    /// Starts an executor for each claimed job, in one of `handed` slots or
    /// else a free one. Claims never exceed the slots; should one have none
    /// anyway, it goes back to the queue.
    fn start_jobs(self: &Arc<Self>, claimed: Vec<Claimed>, mut handed: Vec<Slot>) {
        let Some(env) = self.env.get() else {
            return;
        };
        let mut unplaced = Vec::new();
        for job in claimed {
            let slot = match handed.pop() {
                Some(slot) => slot,
                None => match self.slots.clone().try_acquire_owned() {
                    Ok(slot) => slot,
                    Err(_) => {
                        unplaced.push(job.claim);
                        continue;
                    }
                },
            };
            let lost = CancellationToken::new();
            self.running()
                .insert(job.claim.job_id, (job.claim, lost.clone()));
            let (shared, env) = (self.clone(), env.clone());
            self.jobs.spawn(async move {
                let id = job.claim.job_id;
                executor::execute(&env, job, lost, slot).await;
                shared.running().remove(&id);
            });
        }
        if !unplaced.is_empty() {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.release(&unplaced).await {
                    tracing::warn!(error = %error_chain(&e), "could not give back claims without a slot");
                }
            });
        }
    }
}

impl Refill for Arc<WorkerShared> {
    fn claim_params(&self, max_jobs: usize) -> Option<ClaimParams> {
        (self.backlog.load(Ordering::Relaxed) && !self.stop_claiming.is_cancelled())
            .then(|| self.claim_for(max_jobs))
    }

    fn start(&self, claimed: Vec<Claimed>, slots: Vec<Slot>, filled: bool) {
        self.backlog.store(filled, Ordering::Relaxed);
        self.start_jobs(claimed, slots);
    }
}

impl Held for Arc<WorkerShared> {
    fn claims(&self) -> Vec<ClaimRef> {
        self.running().values().map(|(claim, _)| *claim).collect()
    }

    fn lost(&self, job_id: JobId) {
        if let Some((_, token)) = self.running().get(&job_id) {
            token.cancel();
        }
    }
}

/// A read-only view of a worker's slots (for its metrics). Cheap to clone.
#[derive(Clone)]
pub struct WorkerLoad(Arc<WorkerShared>);

impl WorkerLoad {
    /// Jobs the worker runs now.
    pub fn running(&self) -> usize {
        self.0.running().len()
    }

    /// Jobs it can run at once.
    pub fn slots(&self) -> usize {
        self.0.info.concurrency
    }
}

/// A started worker runtime.
pub struct Worker {
    shared: Arc<WorkerShared>,
    abort: CancellationToken,
    claim_loop: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    completer: JoinHandle<()>,
}

impl Worker {
    /// Registers a worker running up to `settings.workers` jobs at once and
    /// starts claiming.
    pub fn start(
        store: Arc<dyn Store>,
        bus: EventBus,
        settings: Arc<Settings>,
        registry: Arc<Registry>,
    ) -> Worker {
        let host = host_name();
        let pid = std::process::id();
        let short = Uuid::new_v4().simple().to_string();
        let info = WorkerInfo {
            worker_id: format!("{host}:{pid}:{}", &short[..8]),
            host,
            pid,
            started_at: store.clock().now(),
            concurrency: settings.workers,
            serves: Serves::BuiltIn,
        };
        let shared = Arc::new(WorkerShared {
            store: store.clone(),
            settings: settings.clone(),
            limits: Arc::new(ClaimLimits::from_settings(&settings)),
            stop_claiming: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(info.concurrency)),
            backlog: AtomicBool::new(false),
            jobs: TaskTracker::new(),
            env: std::sync::OnceLock::new(),
            info: info.clone(),
        });
        let (completer_handle, completer) =
            Completer::start(store.clone(), info.concurrency, Arc::new(shared.clone()));
        let abort = CancellationToken::new();
        let env = ExecEnv {
            store: store.clone(),
            bus: bus.clone(),
            registry,
            worker_id: info.worker_id.clone(),
            abort: abort.clone(),
            cancel_grace: settings.cancel_grace,
            lease_timeout: settings.lease_timeout,
            default_retry_backoff: settings.retry_backoff,
            completer: completer_handle,
            job_log_max_bytes: settings.job_log_max_bytes,
        };
        let _ = shared.env.set(Arc::new(env));
        let heartbeat = tokio::spawn(heartbeat::run(
            store,
            info,
            settings.heartbeat_interval,
            settings.lease_timeout,
            Arc::new(shared.clone()),
        ));
        let claim_loop = tokio::spawn(claim_loop(shared.clone(), bus));
        tracing::info!(worker_id = %shared.info.worker_id, concurrency = shared.info.concurrency, "worker started");
        Worker {
            shared,
            abort,
            claim_loop,
            heartbeat,
            completer,
        }
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.shared.info.worker_id
    }

    /// A view of its slots, for its metrics.
    pub fn load(&self) -> WorkerLoad {
        WorkerLoad(self.shared.clone())
    }

    /// Stops claiming, waits up to the shutdown grace for running jobs,
    /// stops and re-queues the rest, then unregisters.
    pub async fn shutdown(self) {
        let shared = &self.shared;
        shared.stop_claiming.cancel();
        let _ = self.claim_loop.await;
        shared.jobs.close();
        let grace = shared.settings.shutdown_grace;
        if tokio::time::timeout(grace, shared.jobs.wait())
            .await
            .is_err()
        {
            tracing::info!("shutdown grace over; stopping and re-queueing running jobs");
            self.abort.cancel();
            shared.jobs.wait().await;
        }
        self.heartbeat.abort();
        self.completer.abort();
        if let Err(e) = shared.store.unregister_worker(&shared.info.worker_id).await {
            tracing::warn!(error = %error_chain(&e), "could not unregister worker");
        }
        tracing::info!(worker_id = %shared.info.worker_id, "worker stopped");
    }
}

async fn claim_loop(shared: Arc<WorkerShared>, bus: EventBus) {
    let stop = shared.stop_claiming.clone();
    let mut failing = None;
    while !stop.is_cancelled() {
        let free = shared.slots.available_permits();
        let mut wait = IDLE_POLL;
        if free > 0 {
            match shared.store.claim(&shared.claim_for(free)).await {
                Ok(claimed) => {
                    failing = None;
                    let filled = claimed.len() == free;
                    shared.backlog.store(filled, Ordering::Relaxed);
                    shared.start_jobs(claimed, Vec::new());
                    if filled {
                        // More may be waiting; claim again once a slot frees.
                        wait = Duration::ZERO;
                    }
                }
                Err(e) => {
                    wait = failing
                        .get_or_insert_with(|| retry_delays(CLAIM_RETRY, MAX_CLAIM_BACKOFF))
                        .next()
                        .unwrap_or(MAX_CLAIM_BACKOFF);
                    tracing::warn!(error = %error_chain(&e), retry_in = ?wait, "claim failed");
                }
            }
        }
        let has_room = shared.slots.available_permits() > 0;
        if wait.is_zero() && has_room {
            continue;
        }
        if !has_room {
            // Nothing to do until a job ends and frees its slot.
            wait = IDLE_POLL;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = bus.work_available(), if has_room => {}
            _ = shared.slots.acquire(), if !has_room => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
