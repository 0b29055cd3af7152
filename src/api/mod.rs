//! The HTTP layer: the router of `/api/v1/jobs` and `/health`, its shared
//! state, and the server loop with graceful shutdown.

pub mod error;
pub mod extract;
pub mod jobs;
pub mod pipeline;
pub mod stats;
pub mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use self::error::ApiError;
use self::stats::ProcessMonitor;
use crate::config::Settings;
use crate::events::EventBus;
use crate::runtime::Registry;
use crate::store::Store;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The job store.
    pub store: Arc<dyn Store>,
    /// The process's change feed.
    pub bus: EventBus,
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Known job types (submissions of other types are refused).
    pub registry: Arc<Registry>,
    /// CPU and memory sampling for stats.
    pub monitor: Arc<ProcessMonitor>,
    /// Fired on shutdown: long-polls answer and streams end.
    pub shutdown: CancellationToken,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let jobs = Router::new()
        .route("/status/{job_id}", get(jobs::status))
        .route("/status/{job_id}/poll", get(watch::poll))
        .route("/status/{job_id}/stream", get(watch::stream))
        .route("/queue/stats", get(stats::queue_stats))
        .route("/workers", get(stats::workers))
        .route("/cancel/{job_id}", post(jobs::cancel))
        .route("/restart/{job_id}", post(jobs::restart));
    Router::new()
        .route("/health", get(stats::health_check))
        .nest("/api/v1/jobs", jobs)
        .route("/api/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/api/v1/jobs/pipeline", post(pipeline::submit_pipeline))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal.into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute(format!("{method} {}", uri.path()))
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// Serves `router` on `listener` until `shutdown` fires, then lets open
/// requests finish (long-polls and streams end on the same signal).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
