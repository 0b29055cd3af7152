//! Feeds the throughput chart from the store: once a second the store's
//! finished totals ([`Store::finished_totals`]) are read, and what they
//! grew by since the previous read is counted in the interval under way.
//! The totals cover every process sharing the store, so the chart shows
//! the cluster's work wherever it ran (a `jobd worker`'s jobs reach an API
//! node's event bus only when watched there), for one small read a second
//! per API process and no store work per job. The history starts when
//! this process does, and a finish is placed within a second of its time.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::throughput::ThroughputRing;
use crate::model::now_millis;
use crate::store::{FinishedTotals, Store};

/// How often the totals are read.
const PERIOD: Duration = Duration::from_secs(1);

/// Starts the task (one per process: `api::serve`) that feeds
/// [`ThroughputRing::global`]; it ends when `shutdown` fires.
pub(crate) fn spawn(store: Arc<dyn Store>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let ring = ThroughputRing::global();
        let mut growth = Growth::default();
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            // A failed read is retried at the next tick; what finished
            // meanwhile is counted then. (The dashboard logs outages.)
            match store.finished_totals().await {
                Ok(totals) => {
                    let (completed, failed) = growth.advance(totals);
                    let now = now_millis();
                    ring.count(now, now, completed, failed);
                }
                Err(e) => tracing::debug!(error = %e, "throughput: cannot read the totals"),
            }
        }
    })
}

/// The previous read of the totals, to count what they grew by.
#[derive(Default)]
struct Growth {
    last: Option<FinishedTotals>,
}

impl Growth {
    /// Completions and failures since the previous read: none at the first
    /// read (the baseline), nor when a total went down (the store lost its
    /// data), which starts a new baseline.
    fn advance(&mut self, totals: FinishedTotals) -> (u64, u64) {
        let grown = match self.last {
            Some(last) if totals.completed >= last.completed && totals.failed >= last.failed => (
                totals.completed - last.completed,
                totals.failed - last.failed,
            ),
            _ => (0, 0),
        };
        self.last = Some(totals);
        grown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(completed: u64, failed: u64) -> FinishedTotals {
        FinishedTotals {
            completed,
            failed,
            cancelled: 0,
        }
    }

    #[test]
    fn growth_counts_from_the_first_read_and_survives_a_reset() {
        let mut growth = Growth::default();
        assert_eq!(growth.advance(totals(100, 5)), (0, 0), "the baseline");
        assert_eq!(growth.advance(totals(130, 5)), (30, 0));
        assert_eq!(growth.advance(totals(130, 7)), (0, 2));
        assert_eq!(growth.advance(totals(3, 0)), (0, 0), "a new baseline");
        assert_eq!(growth.advance(totals(4, 0)), (1, 0));
    }
}
