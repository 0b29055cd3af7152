//! The built-in worker's heartbeat: keeps its registration fresh, extends
//! the leases of the jobs it holds, and stops the jobs whose claim the
//! store says is gone (cancelled or recovered elsewhere).

use std::sync::Arc;
use std::time::Duration;

use crate::store::{ClaimRef, Store, WorkerInfo, error_chain};

/// What the heartbeat needs of the worker it beats for.
pub(crate) trait Held: Send + Sync + 'static {
    /// The claims the worker holds now.
    fn claims(&self) -> Vec<ClaimRef>;
    /// Stops the job whose claim is gone.
    fn lost(&self, job_id: crate::model::JobId);
}

/// Beats every `interval`, each beat extending leases to `lease` from now;
/// runs until aborted.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    info: WorkerInfo,
    interval: Duration,
    lease: Duration,
    held: Arc<dyn Held>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match store.heartbeat(&info, &held.claims(), lease).await {
            Ok(lost) => lost.into_iter().for_each(|id| held.lost(id)),
            Err(e) => tracing::warn!(error = %error_chain(&e), "heartbeat failed"),
        }
    }
}
