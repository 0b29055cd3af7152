//! Prometheus metrics at `/metrics`: the recorder, the names and their
//! descriptions in [`recorder`]; each source of samples in a file of its own, where it
//! is cheapest and exact:
//! - [`job_events`]: counters and histograms of the attempts this process
//!   sees, from the event bus's all-jobs feed, read by one task;
//! - [`http`]: request durations from a middleware, labelled by the matched
//!   route template (never the raw path, so ids cannot explode cardinality);
//! - [`store_gauges`]: queue depth, running jobs per user and worker counts,
//!   read from the store at scrape time, so they are right across every
//!   process sharing it; with them [`store_counters`], the jobs completed,
//!   failed and cancelled cluster-wide;
//! - [`worker`]: the `/metrics` of a `jobd worker` (`--metrics-bind`): the
//!   process's own figures, no store reads.
//!
//! The recorder is process-wide (the `metrics` facade has one global
//! recorder) and installed once, whatever the number of routers built.

mod http;
mod job_events;
mod recorder;
mod store_counters;
mod store_gauges;
mod worker;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

pub(crate) use self::http::track_http;
pub(crate) use self::job_events::spawn_feed;
pub(crate) use self::recorder::DASHBOARD_UPDATES;
pub(crate) use self::worker::{WorkerMetrics, serve_worker_metrics};
use super::state::AppState;

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Prometheus text exposition format 0.0.4. Counters and histograms of the \
        attempts this process sees and of its HTTP requests; the jobs completed, failed and \
        cancelled by the whole cluster, and gauges of the whole store, read from the store at \
        scrape time (`jobd_store_up` is 0 and they are left out when the store is unreachable \
        or does not answer all of them within 2 s).",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
    )
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = recorder::render();
    store_gauges::render(&state, &mut text).await;
    ([(header::CONTENT_TYPE, recorder::CONTENT_TYPE)], text).into_response()
}
