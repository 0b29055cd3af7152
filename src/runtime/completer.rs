//! Records attempt outcomes in batches and, while a backlog waits, claims
//! the freed slots' replacements in the same store call (river's
//! `Completer`). A worker runtime hands it each outcome with the slot the
//! job held; the [`Refill`] it was started with decides whether to claim
//! and takes the claimed jobs into the slots.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::model::Job;
use crate::store::{ClaimParams, Claimed, Finish, Store, StoreError, StoreResult};

/// Most attempt outcomes recorded in one store call.
const COMPLETION_BATCH: usize = 128;

/// Store calls recording outcomes at once.
const CALLS_IN_FLIGHT: usize = 2;

/// One of a worker's places for a running job. A job holds its slot until
/// its outcome is recorded; the call that records it may hand the slot
/// straight to a job it claims.
pub(crate) type Slot = OwnedSemaphorePermit;

/// What the completer asks of the worker it serves.
pub(crate) trait Refill: Send + Sync + 'static {
    /// The claim for up to `max_jobs` replacements, or `None` when the
    /// worker wants none now (no backlog, or shutting down).
    fn claim_params(&self, max_jobs: usize) -> Option<ClaimParams>;

    /// Takes the jobs a call claimed into `slots` (the finished jobs'),
    /// before their outcomes are answered; `filled` says whether the
    /// claim took all it asked for (more are likely waiting).
    fn start(&self, claimed: Vec<Claimed>, slots: Vec<Slot>, filled: bool);
}

/// An attempt's outcome waiting to be recorded, with its slot and where to
/// answer.
struct Completion {
    finish: Finish,
    slot: Slot,
    reply: oneshot::Sender<StoreResult<Job>>,
}

/// The handle executors record their outcomes through.
#[derive(Clone)]
pub(crate) struct Completer {
    sender: mpsc::Sender<Completion>,
}

impl Completer {
    /// Starts recording for a worker of `concurrency` slots; the task ends
    /// when every handle is dropped and what they sent is recorded.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        concurrency: usize,
        refill: Arc<dyn Refill>,
    ) -> (Completer, JoinHandle<()>) {
        let (sender, pending) = mpsc::channel(COMPLETION_BATCH * 4);
        let task = tokio::spawn(record_completions(store, concurrency, refill, pending));
        (Completer { sender }, task)
    }

    /// Records an attempt's outcome in the next batch, giving up its slot;
    /// answers with the job as it ended, or why not.
    pub(crate) async fn complete(&self, finish: Finish, slot: Slot) -> StoreResult<Job> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::unavailable("finish", "worker completions stopped");
        self.sender
            .send(Completion {
                finish,
                slot,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Records attempt outcomes in batches. With no store call in flight, what
/// has arrived goes at once (an outcome never waits for company); with one
/// in flight, the next call waits until a full share of the slots has
/// finished or the store answers. Up to [`CALLS_IN_FLIGHT`] calls overlap,
/// so the worker handles one call's jobs while the store works on the
/// next, and each call moves many jobs rather than the first few to end.
async fn record_completions(
    store: Arc<dyn Store>,
    concurrency: usize,
    refill: Arc<dyn Refill>,
    mut pending: mpsc::Receiver<Completion>,
) {
    let full_share = (concurrency / CALLS_IN_FLIGHT).clamp(1, COMPLETION_BATCH);
    let mut calls = JoinSet::new();
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    let mut open = true;
    while open || !batch.is_empty() || !calls.is_empty() {
        let may_send = calls.len() < CALLS_IN_FLIGHT
            && !batch.is_empty()
            && (calls.is_empty() || batch.len() >= full_share || !open);
        if may_send {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(COMPLETION_BATCH));
            calls.spawn(record_batch(store.clone(), refill.clone(), full));
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

/// Records one batch of outcomes and, if the worker wants replacements,
/// claims a job for each slot they free, in the same store call.
async fn record_batch(store: Arc<dyn Store>, refill: Arc<dyn Refill>, batch: Vec<Completion>) {
    let mut items = Vec::with_capacity(batch.len());
    let mut slots = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for completion in batch {
        items.push(completion.finish);
        slots.push(completion.slot);
        replies.push(completion.reply);
    }
    let claim = refill.claim_params(slots.len());
    match store.finish_and_claim(&items, claim.as_ref()).await {
        Ok(exchanged) => {
            let filled = claim
                .as_ref()
                .is_some_and(|params| exchanged.claimed.len() == params.max_jobs);
            // Start the new jobs before answering the finished ones, so a
            // shutdown waiting for running jobs never sees none in between.
            refill.start(exchanged.claimed, slots, filled);
            for (reply, result) in replies.into_iter().zip(exchanged.finished) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            // One failure answers every attempt of the batch.
            let cause = crate::store::error_chain(&e);
            for reply in replies {
                let _ = reply.send(Err(StoreError::unavailable(
                    "finish_and_claim",
                    cause.clone(),
                )));
            }
        }
    }
}
