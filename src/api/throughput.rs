//! The throughput history the dashboard charts: jobs completed and failed
//! per 10-second interval over the last 10 minutes, across every process
//! sharing the store (counted by [`super::throughput_feed`] from the
//! store's finished totals), and served at
//! `GET /api/v1/jobs/queue/throughput` and in the dashboard's live stream.
//!
//! Every operation takes the time as an argument, so the ring can be tested
//! at fixed instants (a test reading the clock would fail whenever it
//! straddled an interval boundary).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Millis, format_millis, now_millis};

/// Width of one throughput interval.
pub(crate) const THROUGHPUT_INTERVAL: Duration = Duration::from_secs(10);

/// Intervals of throughput history kept (10 minutes).
pub(crate) const THROUGHPUT_INTERVALS: usize = 60;

/// Jobs finished per interval, by any worker sharing the store, oldest
/// first, ending with the interval now under way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Throughput {
    /// Width of each interval in seconds.
    pub interval_seconds: u64,
    /// The intervals, oldest first; the last is the current one.
    pub intervals: Vec<ThroughputInterval>,
}

/// Jobs finished in one interval.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ThroughputInterval {
    /// Start of the interval.
    #[schema(format = DateTime)]
    pub start: String,
    /// Jobs completed in it.
    pub completed: u64,
    /// Jobs failed in it (retries scheduled are not failures).
    pub failed: u64,
}

/// One interval being counted.
#[derive(Debug, Clone, Copy)]
struct Interval {
    index: i64,
    completed: u64,
    failed: u64,
}

/// The counted intervals, oldest first; intervals without a finished job
/// are not stored.
#[derive(Default)]
pub(crate) struct ThroughputRing {
    intervals: Mutex<VecDeque<Interval>>,
}

impl ThroughputRing {
    /// The process's ring, fed by the totals feed and read by the routes.
    pub(crate) fn global() -> &'static ThroughputRing {
        static GLOBAL: OnceLock<ThroughputRing> = OnceLock::new();
        GLOBAL.get_or_init(ThroughputRing::default)
    }

    fn intervals(&self) -> MutexGuard<'_, VecDeque<Interval>> {
        // Every operation on the deque is a push, pop or field increment:
        // a panic cannot leave it inconsistent.
        self.intervals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts jobs finished at `at` (`completed`, and `failed` for good),
    /// as seen at `now`; finishes older than the window are ignored.
    pub(crate) fn count(&self, at: Millis, now: Millis, completed: u64, failed: u64) {
        if completed == 0 && failed == 0 {
            return;
        }
        let index = interval_index(at);
        let oldest = interval_index(now) - THROUGHPUT_INTERVALS as i64;
        if index <= oldest {
            return;
        }
        let mut intervals = self.intervals();
        let empty = Interval {
            index,
            completed: 0,
            failed: 0,
        };
        let position = match intervals.iter().position(|i| i.index >= index) {
            Some(p) if intervals[p].index == index => p,
            Some(p) => {
                intervals.insert(p, empty);
                p
            }
            None => {
                intervals.push_back(empty);
                intervals.len() - 1
            }
        };
        if let Some(interval) = intervals.get_mut(position) {
            interval.completed += completed;
            interval.failed += failed;
        }
        while intervals
            .front()
            .is_some_and(|first| first.index <= oldest || intervals.len() > THROUGHPUT_INTERVALS)
        {
            intervals.pop_front();
        }
    }

    /// The [`THROUGHPUT_INTERVALS`] intervals up to the one holding `now`.
    pub(crate) fn throughput(&self, now: Millis) -> Throughput {
        let width = THROUGHPUT_INTERVAL.as_millis() as i64;
        let current = interval_index(now);
        let recorded = self.intervals().clone();
        let intervals = (current - THROUGHPUT_INTERVALS as i64 + 1..=current)
            .map(|index| {
                let found = recorded.iter().find(|i| i.index == index);
                ThroughputInterval {
                    start: format_millis(index * width),
                    completed: found.map_or(0, |i| i.completed),
                    failed: found.map_or(0, |i| i.failed),
                }
            })
            .collect();
        Throughput {
            interval_seconds: THROUGHPUT_INTERVAL.as_secs(),
            intervals,
        }
    }
}

fn interval_index(at: Millis) -> i64 {
    at.div_euclid(THROUGHPUT_INTERVAL.as_millis() as i64)
}

/// `GET /api/v1/jobs/queue/throughput`: the dashboard's chart data.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/queue/throughput",
    tag = "queue",
    summary = "Jobs finished per interval",
    description = "Jobs completed and failed in each of the last 60 intervals of 10 s, oldest \
        first (the last is under way), by every worker sharing the store: counted from the \
        store's totals, read every second since this process started.",
    responses((status = 200, description = "The throughput history", body = Throughput))
)]
pub(crate) async fn throughput() -> axum::Json<Throughput> {
    axum::Json(ThroughputRing::global().throughput(now_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-29T12:00:05Z: half way through an interval.
    const NOW: Millis = 1_795_953_605_000;

    fn width() -> Millis {
        THROUGHPUT_INTERVAL.as_millis() as Millis
    }

    #[test]
    fn throughput_counts_into_the_current_interval() {
        let ring = ThroughputRing::default();
        ring.count(NOW, NOW, 1, 0);
        ring.count(NOW, NOW, 0, 1);
        ring.count(NOW - 4_000, NOW, 1, 0); // same interval, earlier
        ring.count(NOW - 3_600_000, NOW, 1, 0); // outside the window
        let t = ring.throughput(NOW);
        assert_eq!(t.intervals.len(), THROUGHPUT_INTERVALS);
        let last = t.intervals.last().unwrap();
        assert_eq!((last.completed, last.failed), (2, 1));
        assert_eq!(last.start, "2026-11-29T12:00:00.000Z");
        let total: u64 = t.intervals.iter().map(|i| i.completed + i.failed).sum();
        assert_eq!(total, 3);
    }

    #[test]
    fn the_window_moves_with_the_time_given() {
        let ring = ThroughputRing::default();
        ring.count(NOW - width(), NOW, 1, 0); // the previous interval
        let t = ring.throughput(NOW);
        let [.., previous, current] = t.intervals.as_slice() else {
            panic!("too few intervals");
        };
        assert_eq!((previous.completed, current.completed), (1, 0));
        // A whole window later the interval has scrolled out.
        let later = NOW + THROUGHPUT_INTERVALS as Millis * width();
        let t = ring.throughput(later);
        assert_eq!(t.intervals.iter().map(|i| i.completed).sum::<u64>(), 0);
        assert_eq!(
            t.intervals.last().unwrap().start,
            format_millis(interval_index(later) * width())
        );
    }

    #[test]
    fn finishes_arriving_out_of_order_land_in_their_intervals() {
        let ring = ThroughputRing::default();
        ring.count(NOW, NOW, 1, 0);
        ring.count(NOW - 3 * width(), NOW, 0, 1);
        ring.count(NOW - width(), NOW, 1, 0);
        let t = ring.throughput(NOW);
        let counts: Vec<(u64, u64)> = t.intervals[THROUGHPUT_INTERVALS - 4..]
            .iter()
            .map(|i| (i.completed, i.failed))
            .collect();
        assert_eq!(counts, vec![(0, 1), (0, 0), (1, 0), (1, 0)]);
    }
}
