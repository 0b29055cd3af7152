//! The gauges read from the store at scrape time: jobs per status, workers,
//! running jobs of the busiest users, and the configured limits; with them
//! the store's job counters ([`super::store_counters`]).
//!
//! They are rendered by hand in the text format instead of being set
//! through `metrics::gauge!`, on purpose. A gauge set through the facade
//! lives in the recorder until the process ends: once a user has no running
//! job left, its `jobd_running_jobs_by_user{user="..."}` series would keep
//! its last value (stale, and wrong) and the set of users would only grow.
//! Each scrape instead prints exactly what the store holds now, and nothing
//! when the store does not answer, fails, or takes longer than
//! [`STORE_DEADLINE`] for all of them (`jobd_store_up 0`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::store_counters;
use crate::api::state::AppState;
use crate::api::stats::active_within;
use crate::model::JobStatus;
use crate::store::ListQuery;

/// Users named in `jobd_running_jobs_by_user`; the rest are summed as `other`.
const TOP_USERS: usize = 10;

/// Pages of running jobs read at most per scrape (1,000 jobs each).
const RUNNING_PAGES: usize = 10;

/// The time all store reads of one scrape get together: well under
/// Prometheus's default scrape timeout (10 s), so a store that hangs (a
/// paused Redis) makes the scrape report `jobd_store_up 0` instead of
/// failing it. Each read's own bound (5 s on Redis) is longer.
pub(crate) const STORE_DEADLINE: Duration = Duration::from_secs(2);

/// Appends the gauges and counters read from the store now.
pub(super) async fn render(state: &AppState, out: &mut String) {
    let reads = async {
        let (stats, running, totals) = tokio::join!(
            state.store.stats(active_within(state)),
            running_by_user(state),
            state.store.finished_totals(),
        );
        Some((stats.ok()?, running.ok()?, totals.ok()?))
    };
    let read = tokio::time::timeout(STORE_DEADLINE, reads)
        .await
        .ok()
        .flatten();
    gauge_header(
        out,
        "jobd_store_up",
        "1 when the store answered this scrape",
    );
    gauge_line(out, "jobd_store_up", &[], u64::from(read.is_some()));
    let Some((stats, running, totals)) = read else {
        return;
    };
    store_counters::render(&totals, out);
    let count = |status: JobStatus| {
        stats
            .counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    };
    gauge_header(out, "jobd_queue_jobs", "Jobs in the store by status");
    for status in JobStatus::ALL {
        gauge_line(
            out,
            "jobd_queue_jobs",
            &[("status", status.as_str())],
            count(status),
        );
    }
    gauge_header(
        out,
        "jobd_workers",
        "Registered workers: active (heartbeat within the lease time-out) or stale",
    );
    gauge_line(
        out,
        "jobd_workers",
        &[("state", "active")],
        stats.active_workers as u64,
    );
    gauge_line(
        out,
        "jobd_workers",
        &[("state", "stale")],
        stats.stale_workers as u64,
    );
    gauge_header(
        out,
        "jobd_running_jobs_by_user",
        "Running jobs of the users with the most, the rest summed as user=\"other\"",
    );
    let (top, rest) = top_users(running, count(JobStatus::Running));
    for (user, count) in &top {
        gauge_line(out, "jobd_running_jobs_by_user", &[("user", user)], *count);
    }
    gauge_line(out, "jobd_running_jobs_by_user", &[("user", "other")], rest);
    gauge_header(out, "jobd_limit_jobs", "The configured concurrency limits");
    gauge_line(
        out,
        "jobd_limit_jobs",
        &[("limit", "global")],
        state.settings.global_max_concurrent_jobs as u64,
    );
    gauge_line(
        out,
        "jobd_limit_jobs",
        &[("limit", "per_user")],
        state.settings.per_user_max_concurrent_jobs as u64,
    );
}

/// Running jobs per user, from the store's running jobs (a few pages at
/// most: the global limit bounds them).
async fn running_by_user(state: &AppState) -> Result<HashMap<String, u64>, ()> {
    let mut per_user = HashMap::new();
    let mut before = None;
    for _ in 0..RUNNING_PAGES {
        let page = state
            .store
            .list(&ListQuery {
                status: Some(JobStatus::Running),
                user_id: None,
                job_type: None,
                limit: 1000,
                before,
                ..ListQuery::default()
            })
            .await
            .map_err(|_| ())?;
        for job in &page.jobs {
            *per_user.entry(job.user_id.clone()).or_insert(0) += 1;
        }
        match page.next_cursor {
            Some(cursor) => before = Some(cursor),
            None => break,
        }
    }
    Ok(per_user)
}

/// The [`TOP_USERS`] users with the most running jobs (ties by name), and
/// the count of all others (`total` minus the named ones, never negative).
fn top_users(per_user: HashMap<String, u64>, total: u64) -> (Vec<(String, u64)>, u64) {
    let mut users: Vec<_> = per_user.into_iter().collect();
    users.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    users.truncate(TOP_USERS);
    let named: u64 = users.iter().map(|(_, n)| n).sum();
    (users, total.saturating_sub(named))
}

pub(super) fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\"));
    let _ = writeln!(out, "# TYPE {name} gauge");
}

pub(super) fn gauge_line(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"{}\"", escape_label(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Escapes a label value per the text format: backslash, quote, newline.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_users_keeps_the_busiest_and_sums_the_rest() {
        let per_user: HashMap<String, u64> = (0..15).map(|i| (format!("u{i:02}"), i)).collect();
        let total = per_user.values().sum::<u64>() + 2;
        let (top, rest) = top_users(per_user, total);
        assert_eq!(top.len(), TOP_USERS);
        assert_eq!(top[0], ("u14".to_owned(), 14));
        // u00..u04 hold 0+1+2+3+4 = 10, plus 2 running jobs not listed.
        assert_eq!(rest, 12);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        gauge_line(&mut out, "m", &[("user", "a\"b\\c\nd")], 3);
        assert_eq!(out, "m{user=\"a\\\"b\\\\c\\nd\"} 3\n");
    }
}
