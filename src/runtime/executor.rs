//! Runs one claimed job: hands the handler its context, writes progress
//! back, stops the handler when the job is cancelled, times out, loses its
//! claim or the worker shuts down, and records the outcome under the claim
//! (so a late result of a cancelled job is discarded by the store).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::attempt;
use super::completer::{Completer, Slot};
use super::handler::{JobContext, JobFailure};
use super::job_log::{LogBuffer, flush_logs};
use super::registry::Registry;
use crate::backoff::retry_delays;
use crate::events::{EventBus, JobWatch};
use crate::model::{Job, JobStatus, Progress};
use crate::store::{ClaimRef, Claimed, Finish, Outcome, Store, StoreError, error_chain};

/// What an executor runs with: the pieces of its worker it uses, and
/// nothing else of it.
pub(crate) struct ExecEnv {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: EventBus,
    pub(crate) registry: Arc<Registry>,
    /// The worker the job runs on, as its claim names it.
    pub(crate) worker_id: String,
    /// Fired at the end of the shutdown grace: stop running jobs.
    pub(crate) abort: CancellationToken,
    /// How long a stopped handler gets before it is dropped.
    pub(crate) cancel_grace: Duration,
    /// How long an outcome is retried while the store is unavailable.
    pub(crate) lease_timeout: Duration,
    /// Retry backoff base of a job whose type is unknown here.
    pub(crate) default_retry_backoff: Duration,
    /// Where outcomes are recorded.
    pub(crate) completer: Completer,
    /// Bytes of log text kept per job.
    pub(crate) job_log_max_bytes: usize,
}

/// Why a handler was stopped before it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// A user cancelled the job; the store already says so.
    Cancelled,
    /// The claim is gone (recovered from this worker); someone else owns it.
    ClaimLost,
    /// The attempt exceeded its time limit.
    TimedOut,
    /// The worker is shutting down; the job goes back to the queue.
    Shutdown,
}

/// Runs `claimed` to its end in `slot`, which it gives up when its outcome
/// is recorded. `lost` fires when the heartbeat finds the claim gone.
pub(crate) async fn execute(env: &ExecEnv, claimed: Claimed, lost: CancellationToken, slot: Slot) {
    let Claimed { job, claim } = claimed;
    let job = Arc::new(job);
    // A remote type has no handler here; a built-in claim never takes its
    // jobs, so meeting one means the configuration changed under it.
    let runnable = env
        .registry
        .get(&job.job_type)
        .and_then(|job_type| Some((job_type.clone(), job_type.handler.clone()?)));
    let Some((job_type, handler)) = runnable else {
        let error = format!(
            "no handler for job type '{}' on worker {}",
            job.job_type, env.worker_id
        );
        let retry_base = env.default_retry_backoff;
        let result = Err(anyhow::anyhow!(error));
        record_with_backoff(env, &job, claim, slot, result, retry_base).await;
        return;
    };
    // Watch before running, so a cancel during start-up is not missed, and
    // seed the watch with the job as claimed: a snapshot older than the
    // claim (a re-read racing with it) must not look like a lost claim.
    let mut watch = env.bus.watch_running(job.id);
    env.bus.deliver_shared(&job);
    let cancel = CancellationToken::new();
    let (progress_tx, progress_rx) = watch::channel(None);
    // Progress is written from this task, beside the handler: no task of
    // its own for the many jobs that report none.
    let reported = progress_rx.clone();
    let flusher = flush_progress(env.store.clone(), claim, progress_rx, lost.clone());
    tokio::pin!(flusher);
    let mut flushing = true;
    // Log lines likewise: a job that logs nothing costs no store call.
    let log = LogBuffer::new();
    let log_flusher = flush_logs(
        env.store.clone(),
        claim,
        log.clone(),
        env.job_log_max_bytes,
        lost.clone(),
    );
    tokio::pin!(log_flusher);
    let mut log_flushing = true;
    let ctx = JobContext::new(job.clone(), progress_tx, cancel.clone())
        .with_dependencies(attempt::dependencies(env.store.as_ref(), &job).await)
        .with_log(log.clone());
    let time_limit = attempt::time_limit(&job, Some(&job_type));
    tracing::debug!(job_id = %job.id, job_type = %job.job_type, user_id = %job.user_id, "job started");

    let run = handler.run(ctx);
    tokio::pin!(run);
    let deadline = sleep_for(time_limit);
    tokio::pin!(deadline);
    let stopped = loop {
        tokio::select! {
            result = &mut run => break Err(result),
            reason = stop_requested(&mut watch, &lost, &env.abort, &env.worker_id) => break Ok(reason),
            _ = &mut deadline => break Ok(StopReason::TimedOut),
            _ = &mut flusher, if flushing => flushing = false,
            _ = &mut log_flusher, if log_flushing => log_flushing = false,
        }
    };
    let result = match stopped {
        Err(result) => result,
        Ok(reason) => {
            cancel.cancel();
            // Give the handler its grace period, then drop it (which kills
            // an external command's process group), its log still written
            // meanwhile.
            let _ = tokio::time::timeout(env.cancel_grace, async {
                tokio::select! {
                    _ = &mut run => {}
                    _ = &mut log_flusher, if log_flushing => {
                        log_flushing = false;
                        let _ = (&mut run).await;
                    }
                }
            })
            .await;
            match reason {
                StopReason::TimedOut => Err(anyhow::anyhow!(
                    "timed out after {:.1} s",
                    time_limit.map(|d| d.as_secs_f64()).unwrap_or_default()
                )),
                StopReason::Cancelled | StopReason::ClaimLost => {
                    tracing::info!(job_id = %job.id, ?reason, "job stopped; its result is discarded");
                    return;
                }
                StopReason::Shutdown => {
                    // The claim holds until the release: keep the lines.
                    log.close();
                    if log_flushing {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), &mut log_flusher).await;
                    }
                    if let Err(e) = env.store.release(&[claim]).await {
                        tracing::warn!(job_id = %job.id, error = %error_chain(&e), "could not re-queue job on shutdown; its lease will expire");
                    }
                    return;
                }
            }
        }
    };
    // The handler's context is gone with `run`; let the last progress and
    // log lines land before the outcome (after it, the claim is gone).
    if flushing {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut flusher).await;
    }
    log.close();
    if log_flushing {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut log_flusher).await;
    }
    // Done watching: the outcome's snapshot need not be delivered here.
    drop(watch);
    let retry_base = job_type.retry_backoff;
    // The job as it ends: as claimed, with the progress it last reported
    // (written by the flusher above), for the store's snapshot of it.
    let latest = *reported.borrow();
    let job = match latest {
        Some(progress) => Arc::new(Job {
            progress,
            ..(*job).clone()
        }),
        None => job,
    };
    record_with_backoff(env, &job, claim, slot, result, retry_base).await;
}

/// Writes the attempt's outcome, retrying while the store is unavailable
/// (for as long as the lease lasts; after that the reaper owns the job).
async fn record_with_backoff(
    env: &ExecEnv,
    job: &Arc<Job>,
    claim: ClaimRef,
    slot: Slot,
    result: anyhow::Result<Value>,
    retry_base: Duration,
) {
    let outcome = match result {
        Ok(result) => Outcome::Completed { result },
        Err(error) => {
            let retry = error.downcast_ref::<JobFailure>().map(JobFailure::retry);
            let now = env.store.clock().now();
            attempt::failed(job, retry_base, format!("{error:#}"), retry, now)
        }
    };
    let give_up = tokio::time::Instant::now() + env.lease_timeout;
    let mut pauses = retry_delays(Duration::from_millis(50), Duration::from_secs(2));
    let finish = Finish { claim, outcome };
    // First through the worker's batched completions; retries one by one.
    let mut attempt = env.completer.complete(finish.clone(), slot).await;
    let mut pause = pauses.next().unwrap_or(Duration::from_secs(2));
    loop {
        match attempt {
            Ok(done) => {
                tracing::info!(
                    job_id = %done.id, job_type = %done.job_type, user_id = %done.user_id,
                    worker_id = %env.worker_id, status = %done.status, "job finished"
                );
                return;
            }
            Err(StoreError::ClaimLost(_)) => {
                tracing::info!(job_id = %job.id, "claim lost before the result was recorded; result discarded");
                return;
            }
            Err(e) if tokio::time::Instant::now() + pause < give_up => {
                tracing::warn!(job_id = %job.id, error = %error_chain(&e), "could not record result; retrying");
                tokio::time::sleep(pause).await;
                pause = pauses.next().unwrap_or(pause);
                attempt = env.store.finish(claim, finish.outcome.clone()).await;
            }
            Err(e) => {
                tracing::error!(job_id = %job.id, error = %error_chain(&e), "could not record result; the job will be recovered");
                return;
            }
        }
    }
}

async fn sleep_for(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the running job must stop, saying why.
async fn stop_requested(
    watch: &mut JobWatch,
    lost: &CancellationToken,
    abort: &CancellationToken,
    worker_id: &str,
) -> StopReason {
    loop {
        tokio::select! {
            _ = lost.cancelled() => return StopReason::ClaimLost,
            _ = abort.cancelled() => return StopReason::Shutdown,
            changed = watch.changed() => match changed {
                Some(job) if job.status == JobStatus::Cancelled => return StopReason::Cancelled,
                Some(job) if job.status != JobStatus::Running
                    || job.worker_id.as_deref() != Some(worker_id) => return StopReason::ClaimLost,
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            },
        }
    }
}

/// Writes the latest reported progress whenever it changes; reports made
/// while a write is in flight coalesce into the next one.
async fn flush_progress(
    store: Arc<dyn Store>,
    claim: ClaimRef,
    mut reports: watch::Receiver<Option<Progress>>,
    lost: CancellationToken,
) {
    while reports.changed().await.is_ok() {
        let latest = *reports.borrow_and_update();
        let Some(progress) = latest else { continue };
        match store.report_progress(claim, progress).await {
            Ok(_) => {}
            Err(StoreError::ClaimLost(_)) => {
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(job_id = %claim.job_id, error = %error_chain(&e), "progress not recorded")
            }
        }
    }
}
