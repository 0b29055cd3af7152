//! The job counters read from the store at scrape time: jobs completed,
//! failed for good and cancelled, by any process sharing the store
//! ([`crate::store::Store::finished_totals`]). An API node without workers
//! thus counts the work of the cluster's `jobd worker` processes; every
//! node exports the same figures (take `max`, not `sum`, across nodes).
//!
//! Rendered by hand like the gauges, since their value is the store's, not
//! something this process increments.

use std::fmt::Write as _;

use crate::store::FinishedTotals;

/// The counter names, with their help text.
const COUNTERS: [(&str, &str); 3] = [
    (
        "jobd_jobs_completed_total",
        "Jobs completed, by any worker sharing the store (read from the store)",
    ),
    (
        "jobd_jobs_failed_total",
        "Jobs failed for good (no attempts left), by any process sharing the store (read from the store)",
    ),
    (
        "jobd_jobs_cancelled_total",
        "Jobs cancelled, through any process sharing the store (read from the store)",
    ),
];

/// Appends the three counters.
pub(super) fn render(totals: &FinishedTotals, out: &mut String) {
    let values = [totals.completed, totals.failed, totals.cancelled];
    for ((name, help), value) in COUNTERS.iter().zip(values) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_total_is_one_unlabelled_counter() {
        let mut out = String::new();
        let totals = FinishedTotals {
            completed: 7,
            failed: 2,
            cancelled: 1,
        };
        render(&totals, &mut out);
        assert!(
            out.contains("# TYPE jobd_jobs_completed_total counter\njobd_jobs_completed_total 7\n")
        );
        assert!(out.contains("\njobd_jobs_failed_total 2\n"));
        assert!(out.contains("\njobd_jobs_cancelled_total 1\n"));
    }
}
