//! The worker runtime of one process: a claim loop that takes jobs only
//! into free slots, an executor task per job, and a heartbeat that keeps
//! the process registered and its leases alive.
//!
//! Shutdown runs in two stages: stop claiming and let running jobs finish
//! within the grace period; then stop the rest (their handlers get the
//! cancel grace) and give them back to the queue without spending an
//! attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::executor;
use super::handler::Registry;
use crate::config::Settings;
use crate::events::EventBus;
use crate::model::{Job, JobId, Millis, now_millis};
use crate::store::{ClaimParams, ClaimRef, Finish, Store, StoreError, StoreResult, WorkerInfo};

/// Longest idle wait between claim attempts; also bounds how late a due
/// scheduled job is noticed.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Most attempt outcomes recorded in one store call.
const COMPLETION_BATCH: usize = 128;

/// How long the claim loop lets freed slots accumulate while a backlog is
/// waiting, so one claim fills several slots.
const CLAIM_GATHER: Duration = Duration::from_millis(1);

/// An attempt's outcome waiting to be recorded, with where to answer.
struct Completion {
    finish: Finish,
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
    running: Mutex<HashMap<JobId, (ClaimRef, CancellationToken)>>,
    slot_freed: Notify,
    completions: mpsc::Sender<Completion>,
}

impl WorkerShared {
    /// Records an attempt's outcome through the batched completions.
    pub(super) async fn complete(&self, finish: Finish) -> StoreResult<Job> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("worker completions stopped".into());
        self.completions
            .send(Completion { finish, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    fn running(&self) -> MutexGuard<'_, HashMap<JobId, (ClaimRef, CancellationToken)>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A started worker runtime.
pub struct Worker {
    shared: Arc<WorkerShared>,
    stop_claiming: CancellationToken,
    jobs: TaskTracker,
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
        let completer = tokio::spawn(record_completions(store.clone(), pending_completions));
        let shared = Arc::new(WorkerShared {
            store,
            bus,
            settings,
            registry,
            info,
            abort: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
            slot_freed: Notify::new(),
            completions,
        });
        let stop_claiming = CancellationToken::new();
        let jobs = TaskTracker::new();
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone()));
        let claim_loop = tokio::spawn(claim_loop(
            shared.clone(),
            stop_claiming.clone(),
            jobs.clone(),
        ));
        tracing::info!(worker_id = %shared.info.worker_id, concurrency = shared.info.concurrency, "worker started");
        Worker {
            shared,
            stop_claiming,
            jobs,
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
        self.stop_claiming.cancel();
        let _ = self.claim_loop.await;
        self.jobs.close();
        let grace = self.shared.settings.shutdown_grace;
        if tokio::time::timeout(grace, self.jobs.wait()).await.is_err() {
            tracing::info!("shutdown grace over; stopping and re-queueing running jobs");
            self.shared.abort.cancel();
            self.jobs.wait().await;
        }
        self.heartbeat.abort();
        self.completer.abort();
        if let Err(e) = self
            .shared
            .store
            .unregister_worker(&self.shared.info.worker_id)
            .await
        {
            tracing::warn!(error = %e, "could not unregister worker");
        }
        tracing::info!(worker_id = %self.shared.info.worker_id, "worker stopped");
    }
}

/// Records attempt outcomes in batches: whatever queued up while the
/// previous batch was being written goes in the next store call.
async fn record_completions(store: Arc<dyn Store>, mut pending: mpsc::Receiver<Completion>) {
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    while pending.recv_many(&mut batch, COMPLETION_BATCH).await > 0 {
        let items: Vec<Finish> = batch.iter().map(|c| c.finish.clone()).collect();
        match store.finish_many(&items, now_millis()).await {
            Ok(results) => {
                for (completion, result) in batch.drain(..).zip(results) {
                    let _ = completion.reply.send(result);
                }
            }
            Err(e) => {
                for completion in batch.drain(..) {
                    let _ = completion
                        .reply
                        .send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }
}

async fn claim_loop(shared: Arc<WorkerShared>, stop: CancellationToken, jobs: TaskTracker) {
    let slots = Arc::new(Semaphore::new(shared.info.concurrency));
    let gather_until = (shared.info.concurrency / 4).clamp(1, 32);
    let mut failures = 0u32;
    let mut backlog = false;
    while !stop.is_cancelled() {
        if backlog && slots.available_permits() < gather_until {
            // More jobs are waiting: let a few slots free up, then claim
            // them in one call.
            tokio::time::sleep(CLAIM_GATHER).await;
        }
        let free = slots.available_permits();
        let mut wait = IDLE_POLL;
        backlog = false;
        if free > 0 {
            let now = now_millis();
            let params = ClaimParams {
                worker_id: shared.info.worker_id.clone(),
                max_jobs: free,
                global_max: shared.settings.global_max_concurrent_jobs,
                per_user_max: shared.settings.per_user_max_concurrent_jobs,
                lease_until: lease_until(&shared.settings, now),
                now,
            };
            match shared.store.claim(&params).await {
                Ok(claimed) => {
                    failures = 0;
                    let filled = claimed.len() == free;
                    let mut unplaced = Vec::new();
                    for job in claimed {
                        // Claims never exceed the free slots; should one
                        // have no slot anyway, it goes back to the queue.
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            unplaced.push(job.claim);
                            continue;
                        };
                        let lost = CancellationToken::new();
                        shared
                            .running()
                            .insert(job.claim.job_id, (job.claim, lost.clone()));
                        let shared = shared.clone();
                        jobs.spawn(async move {
                            let id = job.claim.job_id;
                            executor::execute(shared.clone(), job, lost).await;
                            shared.running().remove(&id);
                            drop(permit);
                            shared.slot_freed.notify_one();
                        });
                    }
                    if !unplaced.is_empty()
                        && let Err(e) = shared.store.release(&unplaced, now_millis()).await
                    {
                        tracing::warn!(error = %e, "could not give back claims without a slot");
                    }
                    if filled {
                        // More may be waiting; claim again once a slot frees.
                        wait = Duration::ZERO;
                        backlog = true;
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
        let has_room = slots.available_permits() > 0;
        if wait.is_zero() && has_room {
            continue;
        }
        if !has_room {
            // Nothing to do until a job ends.
            wait = IDLE_POLL;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = shared.bus.work_available(), if has_room => {}
            _ = shared.slot_freed.notified() => {}
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

/// This machine's host name, for worker ids and the registry.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
