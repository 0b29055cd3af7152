//! Prometheus metrics at `/metrics`, and the throughput history the
//! dashboard charts.
//!
//! Three sources, each where it is cheapest and exact:
//! - job counters and histograms come from the event bus's all-jobs feed
//!   (every change this process makes), read by one background task;
//! - HTTP request durations come from a middleware, labelled by the matched
//!   route template (never the raw path, so ids cannot explode cardinality);
//! - queue depth, running jobs per user and worker counts are read from the
//!   store at scrape time, so they are right across every process sharing it.
//!
//! The recorder is process-wide (the `metrics` facade has one global
//! recorder) and installed once, whatever the number of routers built.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use super::AppState;
use super::stats::active_since;
use crate::model::{Job, JobId, JobStatus, Millis, format_millis, now_millis};
use crate::store::ListQuery;

/// Users named in `jobd_running_jobs_by_user`; the rest are summed as `other`.
pub const TOP_USERS: usize = 10;

/// Width of one throughput interval.
pub const THROUGHPUT_INTERVAL: Duration = Duration::from_secs(10);

/// Intervals of throughput history kept (10 minutes).
pub const THROUGHPUT_INTERVALS: usize = 60;

/// Most jobs the feed task remembers state for (pending-since times and
/// attempt starts). Entries go when a job leaves the state; a job changed
/// by another process may never report back, so the maps are cleared
/// whole when they reach this size rather than grow.
const TRACKED_JOBS: usize = 100_000;

/// Pages of running jobs read at most per scrape (1,000 jobs each).
const RUNNING_PAGES: usize = 10;

/// Buckets of the job duration histogram, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Buckets of the queue wait histogram, in seconds.
const WAIT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// Buckets of the HTTP request duration histogram, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const SUBMITTED: &str = "jobd_jobs_submitted_total";
const STARTED: &str = "jobd_jobs_started_total";
const COMPLETED: &str = "jobd_jobs_completed_total";
const FAILED: &str = "jobd_jobs_failed_total";
const CANCELLED: &str = "jobd_jobs_cancelled_total";
const RETRIED: &str = "jobd_jobs_retried_total";
const LAGGED: &str = "jobd_job_events_lagged_total";
const DURATION: &str = "jobd_job_duration_seconds";
const QUEUE_WAIT: &str = "jobd_job_queue_wait_seconds";
const HTTP_DURATION: &str = "jobd_http_request_duration_seconds";

/// The process's metrics: the Prometheus handle and the throughput history.
pub struct Telemetry {
    handle: PrometheusHandle,
    throughput: Mutex<VecDeque<Interval>>,
}

/// One throughput interval being counted.
#[derive(Debug, Clone, Copy)]
struct Interval {
    index: i64,
    completed: u64,
    failed: u64,
}

/// Jobs finished per interval by this process's workers, oldest first,
/// ending with the interval now under way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Throughput {
    /// Width of each interval in seconds.
    pub interval_seconds: u64,
    /// The intervals, oldest first; the last is the current one.
    pub intervals: Vec<ThroughputInterval>,
}

/// Jobs finished in one interval.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ThroughputInterval {
    /// Start of the interval.
    #[schema(format = DateTime)]
    pub start: String,
    /// Jobs completed in it.
    pub completed: u64,
    /// Jobs failed in it (retries scheduled are not failures).
    pub failed: u64,
}

impl Telemetry {
    /// The process's telemetry, installing the Prometheus recorder on first
    /// use. Should another recorder already be installed, jobd keeps its own
    /// unregistered one: `/metrics` then shows the scrape-time gauges only.
    pub fn global() -> &'static Telemetry {
        static GLOBAL: OnceLock<Telemetry> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let builder = buckets(PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; job metrics are not exported"
                );
            }
            describe();
            Telemetry {
                handle,
                throughput: Mutex::new(VecDeque::new()),
            }
        })
    }

    fn intervals(&self) -> MutexGuard<'_, VecDeque<Interval>> {
        // Every operation on the deque is a push, pop or field increment:
        // a panic cannot leave it inconsistent.
        self.throughput
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count_finished(&self, at: Millis, failed: bool) {
        let index = interval_index(at);
        let oldest = interval_index(now_millis()) - THROUGHPUT_INTERVALS as i64;
        if index <= oldest {
            return; // older than the window
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
            if failed {
                interval.failed += 1;
            } else {
                interval.completed += 1;
            }
        }
        while intervals
            .front()
            .is_some_and(|first| first.index <= oldest || intervals.len() > THROUGHPUT_INTERVALS)
        {
            intervals.pop_front();
        }
    }

    /// The throughput of the last [`THROUGHPUT_INTERVALS`] intervals up to now.
    pub fn throughput(&self) -> Throughput {
        let width = THROUGHPUT_INTERVAL.as_millis() as i64;
        let current = interval_index(now_millis());
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

fn buckets(builder: PrometheusBuilder) -> PrometheusBuilder {
    [
        (DURATION, DURATION_BUCKETS),
        (QUEUE_WAIT, WAIT_BUCKETS),
        (HTTP_DURATION, HTTP_BUCKETS),
    ]
    .into_iter()
    .fold(builder, |builder, (name, values)| {
        // Only fails for an empty bucket list, which these are not.
        match builder.set_buckets_for_metric(Matcher::Full(name.into()), values) {
            Ok(next) => next,
            Err(e) => panic!("invalid buckets for {name}: {e}"),
        }
    })
}

fn describe() {
    describe_counter!(
        SUBMITTED,
        "Jobs submitted through this process, by job type"
    );
    describe_counter!(
        STARTED,
        "Job attempts started by this process's workers, by job type"
    );
    describe_counter!(
        COMPLETED,
        "Jobs completed by this process's workers, by job type"
    );
    describe_counter!(
        FAILED,
        "Jobs failed for good (no attempts left) in this process, by job type"
    );
    describe_counter!(
        CANCELLED,
        "Jobs cancelled through this process, by job type"
    );
    describe_counter!(
        RETRIED,
        "Failed attempts scheduled for a retry in this process, by job type"
    );
    describe_counter!(
        LAGGED,
        "Job events the metrics task missed because it fell behind"
    );
    describe_histogram!(
        DURATION,
        "Run time of finished attempts (started to completed or failed), by job type and status"
    );
    describe_histogram!(
        QUEUE_WAIT,
        "Time from a job becoming claimable (submitted, due or re-queued) to a worker of this process claiming it, by job type"
    );
    describe_histogram!(
        HTTP_DURATION,
        "HTTP request duration until the response head, by method, route template and status"
    );
}

/// Starts the task that turns this process's job changes into metrics and
/// throughput; it ends when the server shuts down. Counters of every
/// configured job type start at zero, so rates exist before the first job.
pub fn spawn_feed(state: &AppState) -> JoinHandle<()> {
    let telemetry = Telemetry::global();
    for job_type in state.registry.names() {
        for name in [SUBMITTED, STARTED, COMPLETED, FAILED, CANCELLED, RETRIED] {
            counter!(name, "job_type" => job_type.to_string()).increment(0);
        }
    }
    counter!(LAGGED).increment(0);
    let mut feed = state.bus.subscribe_all();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut tracker = Tracker::default();
        let mut upkeep = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                change = feed.recv() => match change {
                    Ok(job) => tracker.observe(&job, telemetry),
                    Err(RecvError::Lagged(missed)) => counter!(LAGGED).increment(missed),
                    Err(RecvError::Closed) => return,
                },
                _ = upkeep.tick() => telemetry.handle.run_upkeep(),
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// What the feed task remembers between snapshots of a job, to tell a
/// claim from a progress report, to time the queue wait, and to drop
/// snapshots that arrive after a newer one (tasks publish concurrently, so
/// a progress report may reach the feed after the cancel that ended it).
#[derive(Default)]
struct Tracker {
    /// When each job last became pending, as seen in this process.
    pending_since: HashMap<JobId, Millis>,
    /// The `started_at` of each running job's attempt already counted.
    started: HashMap<JobId, Millis>,
    /// The newest revision seen of recently changed jobs, in two
    /// generations: when the young one fills up it becomes the old one.
    revisions: HashMap<JobId, i64>,
    /// The previous generation of `revisions`.
    old_revisions: HashMap<JobId, i64>,
}

impl Tracker {
    /// True when a newer snapshot of the job was already observed;
    /// otherwise records this one as the newest.
    fn is_stale(&mut self, job: &Job) -> bool {
        let seen = self
            .revisions
            .get(&job.id)
            .or_else(|| self.old_revisions.get(&job.id));
        if seen.is_some_and(|&revision| revision >= job.revision) {
            return true;
        }
        if self.revisions.len() >= TRACKED_JOBS {
            self.old_revisions = std::mem::take(&mut self.revisions);
        }
        self.revisions.insert(job.id, job.revision);
        false
    }

    fn observe(&mut self, job: &Job, telemetry: &Telemetry) {
        let job_type = job.job_type.clone();
        // Exactly one snapshot of a job has revision 1, its submission;
        // counted even when it arrives late (the claim may be published
        // by the worker before the submit handler publishes).
        if job.revision == 1 {
            counter!(SUBMITTED, "job_type" => job_type.clone()).increment(1);
        }
        if self.is_stale(job) {
            return;
        }
        if self.pending_since.len() >= TRACKED_JOBS {
            self.pending_since.clear();
        }
        if self.started.len() >= TRACKED_JOBS {
            self.started.clear();
        }
        match job.status {
            JobStatus::Pending => {
                self.started.remove(&job.id);
                self.pending_since.insert(job.id, job.updated_at);
            }
            JobStatus::Running => {
                let Some(started_at) = job.started_at else {
                    return;
                };
                if self.started.insert(job.id, started_at) == Some(started_at) {
                    return; // a progress report of an attempt already counted
                }
                counter!(STARTED, "job_type" => job_type.clone()).increment(1);
                let claimable = self.pending_since.remove(&job.id).unwrap_or_else(|| {
                    job.created_at
                        .max(job.scheduled_for.unwrap_or(job.created_at))
                });
                histogram!(QUEUE_WAIT, "job_type" => job_type)
                    .record(seconds_between(claimable, started_at));
            }
            JobStatus::Scheduled => {
                self.started.remove(&job.id);
                self.pending_since.remove(&job.id);
                if job.revision > 1 && job.attempts > 0 {
                    counter!(RETRIED, "job_type" => job_type.clone()).increment(1);
                    if let Some(run) = attempt_seconds(job) {
                        histogram!(DURATION, "job_type" => job_type, "status" => "retried")
                            .record(run);
                    }
                }
            }
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled => {
                self.started.remove(&job.id);
                self.pending_since.remove(&job.id);
                let (name, label) = match job.status {
                    JobStatus::Completed => (COMPLETED, "completed"),
                    JobStatus::Failed => (FAILED, "failed"),
                    _ => (CANCELLED, "cancelled"),
                };
                counter!(name, "job_type" => job_type.clone()).increment(1);
                if job.status != JobStatus::Cancelled {
                    telemetry.count_finished(
                        job.completed_at.unwrap_or(job.updated_at),
                        job.status == JobStatus::Failed,
                    );
                }
                if let Some(run) = attempt_seconds(job) {
                    histogram!(DURATION, "job_type" => job_type, "status" => label).record(run);
                }
            }
        }
    }
}

fn seconds_between(from: Millis, to: Millis) -> f64 {
    (to - from).max(0) as f64 / 1000.0
}

/// The run time of the attempt that just ended, when it ran at all.
fn attempt_seconds(job: &Job) -> Option<f64> {
    let started = job.started_at?;
    Some(seconds_between(
        started,
        job.completed_at.unwrap_or(job.updated_at),
    ))
}

/// Middleware: records each request's duration by method, matched route
/// template (`unmatched` for the fallback) and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    histogram!(
        HTTP_DURATION,
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string(),
    )
    .record(start.elapsed().as_secs_f64());
    response
}

/// Standard methods by name, anything else as `other` (bounded cardinality).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Prometheus text exposition format 0.0.4. Counters and histograms of this \
        process's job events and HTTP requests; gauges of the whole store read at scrape time \
        (`jobd_store_up` is 0 and they are left out when the store is unreachable).",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = Telemetry::global().handle.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    render_store_gauges(&state, &mut text).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /api/v1/jobs/queue/throughput`: the dashboard's chart data.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/queue/throughput",
    tag = "queue",
    summary = "Jobs finished per interval",
    description = "Jobs completed and failed by this process's workers in each of the last \
        60 intervals of 10 s, oldest first (the last is under way).",
    responses((status = 200, description = "The throughput history", body = Throughput))
)]
pub async fn throughput() -> axum::Json<Throughput> {
    axum::Json(Telemetry::global().throughput())
}

/// Appends the gauges read from the store now.
async fn render_store_gauges(state: &AppState, out: &mut String) {
    let stats = state.store.stats(active_since(state)).await;
    let running = running_by_user(state).await;
    let up = stats.is_ok() && running.is_ok();
    gauge_header(
        out,
        "jobd_store_up",
        "1 when the store answered this scrape",
    );
    gauge_line(out, "jobd_store_up", &[], u64::from(up));
    let (Ok(stats), Ok(running)) = (stats, running) else {
        return;
    };
    gauge_header(out, "jobd_queue_jobs", "Jobs in the store by status");
    for status in JobStatus::ALL {
        let count = stats
            .counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        gauge_line(
            out,
            "jobd_queue_jobs",
            &[("status", status.as_str())],
            count,
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
    let running_total = stats
        .counts
        .iter()
        .find(|(s, _)| *s == JobStatus::Running)
        .map_or(0, |(_, n)| *n);
    let (top, rest) = top_users(running, running_total);
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

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\"));
    let _ = writeln!(out, "# TYPE {name} gauge");
}

fn gauge_line(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
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
    fn late_snapshots_do_not_count_again() {
        let telemetry = Telemetry {
            handle: PrometheusBuilder::new().build_recorder().handle(),
            throughput: Mutex::new(VecDeque::new()),
        };
        let mut tracker = Tracker::default();
        let mut job = crate::model::Job {
            id: uuid::Uuid::now_v7(),
            job_type: "t".into(),
            user_id: "u".into(),
            status: JobStatus::Running,
            priority: 0,
            parameters: serde_json::json!({}),
            result: None,
            error: None,
            progress: Default::default(),
            attempts: 1,
            max_attempts: 1,
            interruptions: 0,
            timeout_seconds: None,
            created_at: 0,
            scheduled_for: None,
            started_at: Some(10),
            completed_at: None,
            updated_at: 10,
            worker_id: None,
            revision: 3,
            depends_on: Vec::new(),
            waiting_dependencies: 0,
            cancelled_by: None,
        };
        let progress = job.clone();
        job.status = JobStatus::Cancelled;
        job.revision = 4;
        tracker.observe(&job, &telemetry);
        assert!(tracker.is_stale(&progress), "an older snapshot is stale");
        assert!(!tracker.started.contains_key(&job.id));
        job.revision = 5;
        assert!(!tracker.is_stale(&job));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        gauge_line(&mut out, "m", &[("user", "a\"b\\c\nd")], 3);
        assert_eq!(out, "m{user=\"a\\\"b\\\\c\\nd\"} 3\n");
    }

    #[test]
    fn throughput_counts_into_the_current_interval() {
        let telemetry = Telemetry {
            handle: PrometheusBuilder::new().build_recorder().handle(),
            throughput: Mutex::new(VecDeque::new()),
        };
        let now = now_millis();
        telemetry.count_finished(now, false);
        telemetry.count_finished(now, true);
        telemetry.count_finished(now, false);
        telemetry.count_finished(now - 3_600_000, false); // outside the window
        let t = telemetry.throughput();
        assert_eq!(t.intervals.len(), THROUGHPUT_INTERVALS);
        let last = t.intervals.last().unwrap();
        assert_eq!((last.completed, last.failed), (2, 1));
        let total: u64 = t.intervals.iter().map(|i| i.completed + i.failed).sum();
        assert_eq!(total, 3);
    }
}
