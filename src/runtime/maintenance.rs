//! Periodic store maintenance run by every process: promoting due
//! scheduled jobs, expiring jobs past their deadline to start by, recovering the jobs of workers whose lease expired
//! (and removing stale worker registrations), and retention cleanup at
//! start-up and every cleanup interval. Each pass is one atomic store
//! operation, so several processes may run it at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::process;
use crate::config::Settings;
use crate::store::{CleanupParams, RecoverParams, Store, error_chain};

/// Longest sleep of the scheduler between looks at the next due job.
const SCHEDULER_POLL: Duration = Duration::from_secs(1);

/// Time between expiry passes: a job past its deadline is cancelled within
/// this (plus the pass itself) of it, well inside the promised second.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(250);

/// Starts the maintenance loops; they end when `stop` fires.
pub(crate) fn spawn(
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(
            scheduler(store.clone(), stop.clone()),
            expirer(store.clone(), stop.clone()),
            reaper(store.clone(), settings.clone(), stop.clone()),
            cleaner(store, settings, stop),
        );
    })
}

async fn scheduler(store: Arc<dyn Store>, stop: CancellationToken) {
    loop {
        let now = store.clock().now();
        let wait = match store.next_due().await {
            Ok(Some(due)) if due <= now => Duration::ZERO,
            Ok(Some(due)) => Duration::from_millis((due - now) as u64).min(SCHEDULER_POLL),
            _ => SCHEDULER_POLL,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = store.promote_due().await {
            tracing::warn!(error = %error_chain(&e), "promoting scheduled jobs failed");
        }
    }
}

/// Cancels jobs past their deadline to start by, every [`EXPIRY_INTERVAL`]
/// (each pass one atomic store operation; the store arbitrates between
/// processes).
async fn expirer(store: Arc<dyn Store>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(EXPIRY_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // While the store is down, one warning, not four a second.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match store.expire_due().await {
            Ok(expired) => {
                failing = false;
                if !expired.is_empty() {
                    tracing::info!(count = expired.len(), "expired jobs past their deadline");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %error_chain(&e), "expiring jobs failed");
            }
            Err(e) => tracing::debug!(error = %error_chain(&e), "expiring jobs failed"),
        }
    }
}

/// Registered workers of this host whose process is gone (a crash or
/// `kill -9`): their jobs need not wait out the lease.
async fn dead_workers_here(store: &dyn Store, host: &str) -> Vec<String> {
    match store.workers().await {
        Ok(workers) => workers
            .into_iter()
            .filter(|worker| process::is_dead_here(worker, host))
            .map(|worker| worker.info.worker_id)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "could not read the worker registry");
            Vec::new()
        }
    }
}

/// Recovers expired leases and the jobs of dead local workers; the first
/// pass runs at start-up, so a restart after a crash resumes its jobs at
/// once.
async fn reaper(store: Arc<dyn Store>, settings: Arc<Settings>, stop: CancellationToken) {
    let host = process::host_name();
    let mut ticker = tokio::time::interval(settings.lease_check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let params = RecoverParams {
            max_interruptions: settings.max_interruptions,
            stale_worker_after: settings.stale_worker_after,
            dead_workers: dead_workers_here(store.as_ref(), &host).await,
        };
        match store.recover_expired(&params).await {
            Ok(report)
                if !report.requeued.is_empty()
                    || !report.failed.is_empty()
                    || report.stale_workers_removed > 0 =>
            {
                tracing::warn!(
                    requeued = ?report.requeued, failed = ?report.failed,
                    stale_workers_removed = report.stale_workers_removed,
                    "recovered jobs of lost workers"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %error_chain(&e), "lease recovery failed"),
        }
    }
}

async fn cleaner(store: Arc<dyn Store>, settings: Arc<Settings>, stop: CancellationToken) {
    // The first tick fires at once: the start-up cleanup.
    let mut ticker =
        tokio::time::interval(settings.cleanup_interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let params = CleanupParams {
            completed_retention: settings.completed_retention,
            failed_retention: settings.failed_retention,
            audit_retention: settings.audit_retention,
        };
        match store.cleanup(&params).await {
            Ok(report) => tracing::info!(
                jobs_deleted = report.jobs_deleted,
                audit_deleted = report.audit_deleted,
                bytes_released = report.bytes_released,
                "cleanup pass"
            ),
            Err(e) => tracing::warn!(error = %error_chain(&e), "cleanup failed"),
        }
    }
}
