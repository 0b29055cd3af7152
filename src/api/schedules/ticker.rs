//! The schedule ticker, one per server: each pass reads the schedules,
//! stores the job each one owes ([`Schedule::due_tick`]) through
//! `Store::fire_schedule` (so of every server, one stores a tick's job),
//! then sleeps until the next tick of any, at most [`MAX_SLEEP`] so that
//! new, changed and resumed schedules are seen soon.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::job_of;
use crate::api::state::AppState;
use crate::model::{Cadence, Millis, Schedule, ScheduleTick};
use crate::store::error_chain;

/// The longest sleep between passes.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Starts the ticker; it stops with `shutdown`.
pub(crate) fn spawn(state: AppState, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let sleep = match pass(&state).await {
                Ok(Some(next)) => {
                    let wait = next.saturating_sub(state.store.clock().now()).max(0);
                    MAX_SLEEP.min(Duration::from_millis(wait as u64))
                }
                Ok(None) => MAX_SLEEP,
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "schedules: the store failed; retrying");
                    MAX_SLEEP
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// Fires every owed tick; the next tick of any schedule.
async fn pass(state: &AppState) -> crate::store::StoreResult<Option<Millis>> {
    let now = state.store.clock().now();
    let mut next: Option<Millis> = None;
    for schedule in state.store.schedules().await? {
        let cadence = match Cadence::of(&schedule.spec) {
            Ok(cadence) => cadence,
            Err(e) => {
                tracing::warn!(schedule = %schedule.name, error = %e, "schedule skipped");
                continue;
            }
        };
        if let Some(tick) = schedule.due_tick(&cadence, now) {
            fire(state, &schedule, tick).await?;
        }
        if !schedule.paused {
            next = next.into_iter().chain(cadence.next_after(now)).min();
        }
    }
    Ok(next)
}

/// Stores `schedule`'s job for `tick`, unless another server did.
async fn fire(
    state: &AppState,
    schedule: &Schedule,
    tick: Millis,
) -> crate::store::StoreResult<()> {
    let job = match job_of(&schedule.spec, state) {
        Ok(job) => job,
        Err(e) => {
            // Its job type left this server's configuration: another
            // server may still know it.
            tracing::warn!(schedule = %schedule.name, error = %e, "schedule's job refused here");
            return Ok(());
        }
    };
    let tick = ScheduleTick {
        name: schedule.name.clone(),
        tick,
    };
    match state
        .store
        .fire_schedule(&tick, schedule.revision, job)
        .await
    {
        Ok(Some(job)) => {
            tracing::debug!(schedule = %tick.name, job_id = %job.id, "schedule fired");
            Ok(())
        }
        Ok(None) => Ok(()),
        // Over the user's quota: this tick is tried again next pass.
        Err(crate::store::StoreError::QuotaExceeded { user_id, limit }) => {
            tracing::warn!(schedule = %tick.name, %user_id, limit, "schedule's job over the quota");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
