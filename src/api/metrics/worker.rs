//! The `/metrics` of a `jobd worker` (`--metrics-bind ADDR`), so that
//! Prometheus can scrape workers too: what this process's workers do (the
//! attempts they start and retry, their run times and queue waits, from
//! its job events) and its own running jobs and slots. Nothing is read
//! from the store: the cluster's job totals are the API nodes' to export.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::job_events::spawn_feed;
use super::recorder;
use super::store_gauges::{gauge_header, gauge_line};
use crate::api::listen::{self, ConnectionLimits};
use crate::events::EventBus;
use crate::runtime::WorkerLoad;

/// What a worker process's metrics are read from.
pub(crate) struct WorkerMetrics<'a> {
    /// The process's change feed (its attempts' events).
    pub bus: &'a EventBus,
    /// The configured job types, whose counters start at zero.
    pub job_types: Vec<&'a str>,
    /// The worker's slots.
    pub load: WorkerLoad,
}

/// Starts the job-event feed and serves `GET /metrics` on `listener` until
/// `shutdown` fires; the task ends with the server.
pub(crate) fn serve_worker_metrics(
    listener: TcpListener,
    source: WorkerMetrics<'_>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let feed = spawn_feed(source.bus, source.job_types, shutdown.clone());
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(source.load);
    // A scraper or two: a few connections, the API's time-out.
    let limits = ConnectionLimits {
        max_connections: 16,
        read_timeout: Duration::from_secs(10),
    };
    tokio::spawn(async move {
        listen::serve(listener, app, limits, shutdown).await;
        feed.abort();
    })
}

async fn metrics(State(load): State<WorkerLoad>) -> Response {
    let mut text = recorder::render();
    gauge_header(
        &mut text,
        "jobd_worker_running_jobs",
        "Jobs this worker process runs now",
    );
    gauge_line(
        &mut text,
        "jobd_worker_running_jobs",
        &[],
        load.running() as u64,
    );
    gauge_header(
        &mut text,
        "jobd_worker_slots",
        "Jobs this worker process can run at once (--workers)",
    );
    gauge_line(&mut text, "jobd_worker_slots", &[], load.slots() as u64);
    ([(header::CONTENT_TYPE, recorder::CONTENT_TYPE)], text).into_response()
}
