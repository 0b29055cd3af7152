//! The process-wide Prometheus recorder: the metric names, their
//! descriptions and histogram buckets, installed once.

use std::sync::OnceLock;

use ::metrics::{describe_counter, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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

pub(super) const SUBMITTED: &str = "jobd_jobs_submitted_total";
pub(super) const STARTED: &str = "jobd_jobs_started_total";
pub(super) const RETRIED: &str = "jobd_jobs_retried_total";
pub(super) const LAGGED: &str = "jobd_job_events_lagged_total";
pub(super) const DURATION: &str = "jobd_job_duration_seconds";
pub(super) const QUEUE_WAIT: &str = "jobd_job_queue_wait_seconds";
pub(super) const HTTP_DURATION: &str = "jobd_http_request_duration_seconds";

/// Dashboard updates built by this process (each one read of the queue
/// statistics and the worker registry), however many dashboards are open.
pub(crate) const DASHBOARD_UPDATES: &str = "jobd_dashboard_updates_total";

/// The content type of a `/metrics` answer: text format 0.0.4.
pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the recorder holds now, in the text format, ending with a newline
/// (so more samples can follow) unless empty.
pub(super) fn render() -> String {
    let mut text = prometheus().render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The process's Prometheus handle, installing the recorder on first use.
/// Should another recorder already be installed, jobd keeps its own
/// unregistered one: `/metrics` then shows the scrape-time gauges only.
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = buckets(PrometheusBuilder::new()).build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; job metrics are not exported"
            );
        }
        describe();
        handle
    })
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
        RETRIED,
        "Failed attempts scheduled for a retry in this process, by job type"
    );
    describe_counter!(
        LAGGED,
        "Job events the metrics task missed because it fell behind"
    );
    describe_counter!(
        DASHBOARD_UPDATES,
        "Dashboard updates built by this process (each one read of the queue statistics and the worker registry), however many dashboards are open"
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
