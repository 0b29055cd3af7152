//! The HTTP layer: the router of `/api/v1/jobs`, `/health`, `/metrics`, the
//! OpenAPI document and the dashboard, its shared state, and the server
//! loop with graceful shutdown. The routes themselves are listed once, in
//! [`openapi::routes`].

pub mod dashboard;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod schema;
pub mod stats;
pub mod throughput;
pub mod watch;
pub mod why;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
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

/// The whole HTTP application: the documented routes, the error-shaped
/// fallbacks, and the layers (request metrics, body limit, panic catcher,
/// tracing).
pub fn router(state: AppState) -> Router {
    let (routes, _) = openapi::routes().split_for_parts();
    routes
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track_http))
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
/// requests finish (long-polls and streams end on the same signal). Also
/// runs the task that turns this process's job events into metrics.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let _feed = metrics::spawn_feed(&state);
    let app = router(state);
    // No Nagle delay: SSE events and long-poll answers are small writes
    // that must leave at once.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
