//! The worker runtime of one process: a claim loop that takes jobs only
//! into free slots, an executor task per job, a completer that records
//! outcomes in batches and, while a backlog waits, claims the freed slots'
//! replacements in the same store call, and a heartbeat that keeps the
//! process registered and its leases alive.
//!
//! Shutdown runs in two stages: stop claiming and let running jobs finish
//! within the grace period; then stop the rest (their handlers get the
//! cancel grace) and give them back to the queue without spending an
//! attempt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::executor;
use super::handler::Registry;
use super::process::host_name;
use crate::config::Settings;
use crate::events::EventBus;
use crate::model::{Job, JobId, Millis, now_millis};
use crate::store::{
    ClaimParams, ClaimRef, Claimed, Finish, Store, StoreError, StoreResult, WorkerInfo,
};

/// Longest idle wait between claim attempts; also bounds how late a due
/// scheduled job is noticed.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Most attempt outcomes recorded in one store call.
const COMPLETION_BATCH: usize = 128;

/// Store calls recording outcomes at once.
const CALLS_IN_FLIGHT: usize = 2;

/// One of the worker's `concurrency` places for a running job. A job holds
/// its slot until its outcome is recorded; the call that records it may
/// hand the slot straight to a job it claims.
pub(super) type Slot = OwnedSemaphorePermit;

/// An attempt's outcome waiting to be recorded, with its slot and where to
/// answer.
struct Completion {
    finish: Finish,
    slot: Slot,
    reply: oneshot::Sender<StoreResult<Job>>,
}

/// What the claim loop, the heartbeat and the executors share.
pub(super) struct WorkerShared {
    pub(super) store: Arc<dyn Store>,
    pub(super) bus: EventBus,
    pub(super) settings: Arc<Settings>,
    pub(super) registry: Arc<Registry>,
    pub(super) info: WorkerInfo,
    /// Fired at the end of the shutdown grace: stop running jobs.
    pub(super) abort: CancellationToken,
    /// Fired at shutdown: claim nothing more.
    stop_claiming: CancellationToken,
    running: Mutex<HashMap<JobId, (ClaimRef, CancellationToken)>>,
    slots: Arc<Semaphore>,
    /// The last claim took all it asked for: more jobs are likely waiting,
    /// so recording outcomes also claims replacements.
    backlog: AtomicBool,
    jobs: TaskTracker,
    completions: mpsc::Sender<Completion>,
}

impl WorkerShared {
    /// Records an attempt's outcome through the batched completions, giving
    /// up its slot.
    pub(super) async fn complete(&self, finish: Finish, slot: Slot) -> StoreResult<Job> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("worker completions stopped".into());
        self.completions
            .send(Completion {
                finish,
                slot,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    fn running(&self) -> MutexGuard<'_, HashMap<JobId, (ClaimRef, CancellationToken)>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn claim_params(&self, max_jobs: usize) -> ClaimParams {
        let now = now_millis();
        ClaimParams {
            worker_id: self.info.worker_id.clone(),
            max_jobs,
            global_max: self.settings.global_max_concurrent_jobs,
            per_user_max: self.settings.per_user_max_concurrent_jobs,
            lease_until: lease_until(&self.settings, now),
            now,
        }
    }

    /// Starts an executor for each claimed job, in one of `handed` slots or
    /// else a free one. Claims never exceed the slots; should one have none
    /// anyway, it goes back to the queue.
    async fn start_jobs(self: &Arc<Self>, claimed: Vec<Claimed>, mut handed: Vec<Slot>) {
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
            let shared = self.clone();
            self.jobs.spawn(async move {
                let id = job.claim.job_id;
                executor::execute(shared.clone(), job, lost, slot).await;
                shared.running().remove(&id);
            });
        }
        if !unplaced.is_empty()
            && let Err(e) = self.store.release(&unplaced, now_millis()).await
        {
            tracing::warn!(error = %e, "could not give back claims without a slot");
        }
    }
}

/// A started worker runtime.
pub struct Worker {
    shared: Arc<WorkerShared>,
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
            started_at: now_millis(),
            concurrency: settings.workers,
        };
        let (completions, pending_completions) = mpsc::channel(COMPLETION_BATCH * 4);
        let shared = Arc::new(WorkerShared {
            store,
            bus,
            settings,
            registry,
            abort: CancellationToken::new(),
            stop_claiming: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(info.concurrency)),
            backlog: AtomicBool::new(false),
            jobs: TaskTracker::new(),
            completions,
            info,
        });
        let completer = tokio::spawn(record_completions(shared.clone(), pending_completions));
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone()));
        let claim_loop = tokio::spawn(claim_loop(shared.clone()));
        tracing::info!(worker_id = %shared.info.worker_id, concurrency = shared.info.concurrency, "worker started");
        Worker {
            shared,
            claim_loop,
            heartbeat,
            completer,
        }
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.shared.info.worker_id
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
            shared.abort.cancel();
            shared.jobs.wait().await;
        }
        self.heartbeat.abort();
        self.completer.abort();
        if let Err(e) = shared.store.unregister_worker(&shared.info.worker_id).await {
            tracing::warn!(error = %e, "could not unregister worker");
        }
        tracing::info!(worker_id = %shared.info.worker_id, "worker stopped");
    }
}

/// Records attempt outcomes in batches. With no store call in flight, what
/// has arrived goes at once (an outcome never waits for company); with one
/// in flight, the next call waits until a full share of the slots has
/// finished or the store answers. Up to [`CALLS_IN_FLIGHT`] calls overlap,
/// so the worker handles one call's jobs while the store works on the
/// next, and each call moves many jobs rather than the first few to end.
async fn record_completions(shared: Arc<WorkerShared>, mut pending: mpsc::Receiver<Completion>) {
    let full_share = (shared.info.concurrency / CALLS_IN_FLIGHT).clamp(1, COMPLETION_BATCH);
    let mut calls = JoinSet::new();
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    let mut open = true;
    while open || !batch.is_empty() || !calls.is_empty() {
        let may_send = calls.len() < CALLS_IN_FLIGHT
            && !batch.is_empty()
            && (calls.is_empty() || batch.len() >= full_share || !open);
        if may_send {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(COMPLETION_BATCH));
            calls.spawn(record_batch(shared.clone(), full));
            continue;
        }
        let room = COMPLETION_BATCH - batch.len();
        tokio::select! {
            received = pending.recv_many(&mut batch, room), if open && room > 0 => {
                open = received > 0;
            }
            Some(_) = calls.join_next() => {}
        }
    }
}

/// Records one batch of outcomes and, while a backlog waits, claims a job
/// for each slot they free, in the same store call.
async fn record_batch(shared: Arc<WorkerShared>, batch: Vec<Completion>) {
    let mut items = Vec::with_capacity(batch.len());
    let mut slots = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for completion in batch {
        items.push(completion.finish);
        slots.push(completion.slot);
        replies.push(completion.reply);
    }
    let refill = (shared.backlog.load(Ordering::Relaxed) && !shared.stop_claiming.is_cancelled())
        .then(|| shared.claim_params(slots.len()));
    match shared
        .store
        .finish_and_claim(&items, now_millis(), refill.as_ref())
        .await
    {
        Ok(exchanged) => {
            if let Some(params) = &refill {
                let filled = exchanged.claimed.len() == params.max_jobs;
                shared.backlog.store(filled, Ordering::Relaxed);
            }
            // Start the new jobs before answering the finished ones, so a
            // shutdown waiting for running jobs never sees none in between.
            shared.start_jobs(exchanged.claimed, slots).await;
            for (reply, result) in replies.into_iter().zip(exchanged.finished) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
            }
        }
    }
}

async fn claim_loop(shared: Arc<WorkerShared>) {
    let stop = shared.stop_claiming.clone();
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        let free = shared.slots.available_permits();
        let mut wait = IDLE_POLL;
        if free > 0 {
            match shared.store.claim(&shared.claim_params(free)).await {
                Ok(claimed) => {
                    failures = 0;
                    let filled = claimed.len() == free;
                    shared.backlog.store(filled, Ordering::Relaxed);
                    shared.start_jobs(claimed, Vec::new()).await;
                    if filled {
                        // More may be waiting; claim again once a slot frees.
                        wait = Duration::ZERO;
                    }
                }
                Err(e) => {
                    failures += 1;
                    wait = Duration::from_millis(100 * 2u64.pow(failures.min(6)))
                        .min(Duration::from_secs(5));
                    tracing::warn!(error = %e, retry_in = ?wait, "claim failed");
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
            _ = shared.bus.work_available(), if has_room => {}
            _ = shared.slots.acquire(), if !has_room => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn heartbeat_loop(shared: Arc<WorkerShared>) {
    let mut ticker = tokio::time::interval(shared.settings.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let held: Vec<ClaimRef> = shared.running().values().map(|(claim, _)| *claim).collect();
        let now = now_millis();
        match shared
            .store
            .heartbeat(&shared.info, &held, lease_until(&shared.settings, now), now)
            .await
        {
            Ok(lost) => {
                let running = shared.running();
                for id in lost {
                    if let Some((_, token)) = running.get(&id) {
                        token.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

fn lease_until(settings: &Settings, now: Millis) -> Millis {
    now + settings.lease_timeout.as_millis() as Millis
}
