//! The HTTP layer: the router of `/api/v1/jobs`, `/health`, `/metrics`, the
//! OpenAPI document and the dashboard, its shared state, and the server
//! loop with graceful shutdown. The routes themselves are listed once, in
//! [`openapi::routes`].

pub(crate) mod artifacts;
pub mod audit;
pub(crate) mod audit_page;
pub(crate) mod auth;
pub mod backpressure;
pub(crate) mod batch;
pub(crate) mod dashboard;
pub(crate) mod debounce;
pub(crate) mod error;
pub(crate) mod extract;
mod guard;
mod head;
pub(crate) mod idempotency;
pub(crate) mod jobs;
mod listen;
pub(crate) mod live;
pub(crate) mod log_view;
pub(crate) mod logs;
pub(crate) mod metrics;
pub mod monitor;
pub mod openapi;
pub(crate) mod pipeline;
mod redact;
pub(crate) mod remote;
pub(crate) mod schedules;
pub(crate) mod schema;
mod sse_schema;
pub mod state;
pub(crate) mod stats;
pub(crate) mod throughput;
mod throughput_feed;
pub(crate) mod tokens;
pub(crate) mod watch;
pub(crate) mod why;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use self::error::ApiError;
pub use self::state::AppState;

/// The whole HTTP application: the documented routes behind the
/// identities gate ([`auth::authenticate`], a route layer, so that it knows
/// which route matched), the error-shaped fallbacks, the dashboard's shared
/// producer, and the layers.
pub fn router(state: AppState) -> Router {
    let (routes, _) = openapi::routes().split_for_parts();
    let verifier =
        auth::verifier::Verifier::new(state.store.clone(), state.settings.admin_token.clone());
    let gate = auth::Gate::new(state.settings.auth, verifier.clone());
    let routes = routes
        .route_layer(axum::middleware::from_fn_with_state(
            gate,
            auth::authenticate,
        ))
        .layer(Extension(verifier))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(live::LiveFeed::default()))
        .layer(Extension(remote::Node::default()));
    let settings = &state.settings;
    let guard = guard::Guard::from_settings(settings);
    with_layers(
        routes,
        settings.max_body_bytes,
        settings.http_read_timeout,
        guard,
    )
    .with_state(state)
}

/// The layers of every route, innermost first: the body limit and the
/// time a body may take to arrive (`read_timeout`); the panic
/// catcher (a panic becomes a 500 `InternalError`); the limits of the
/// request head (414 and 431 in the error shape); the browser checks
/// (`Host`, `Origin`, CORS) and security headers of [`guard`], outside the
/// head limits so that their answers get the headers too; request metrics
/// and error logging, outside the catcher and the guard so that they see
/// their 500s and 403s too; and tracing spans without secrets
/// ([`redact::request_span`]), whose own failure log is off (errors are
/// logged once, with their cause, by [`error::log_errors`]).
fn with_layers<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    max_body: usize,
    read_timeout: Duration,
    guard: guard::Guard,
) -> Router<S> {
    routes
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyTimeoutLayer::new(read_timeout))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(head::check_head))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(axum::middleware::from_fn(error::log_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(redact::request_span)
                .on_failure(()),
        )
}

/// The answer to a handler's panic; the panic's message goes to the log.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    ApiError::Internal(format!("handler panicked: {message}")).into_response()
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute(format!("{method} {}", uri.path()))
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// Serves `router` on `listener` until `shutdown` fires, then lets open
/// requests finish (long-polls and streams end on the same signal). Also
/// runs the task that turns this process's job events into metrics and
/// the one that feeds the throughput chart from the store's totals.
/// `open_files` is the process's descriptor limit: unless
/// `max_connections` is set, connections may use all but a quarter of it,
/// or all but [`RESERVED_FILES`] when that is less.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    open_files: u64,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let _feed = metrics::spawn_feed(&state.bus, state.registry.names(), state.shutdown.clone());
    let _throughput = throughput_feed::spawn(state.store.clone(), state.shutdown.clone());
    let _ticker = schedules::ticker::spawn(state.clone(), state.shutdown.clone());
    let limits = listen::ConnectionLimits {
        max_connections: state.settings.max_connections.unwrap_or_else(|| {
            let spare = open_files - RESERVED_FILES.min(open_files / 4);
            usize::try_from(spare).unwrap_or(usize::MAX)
        }),
        read_timeout: state.settings.http_read_timeout,
    };
    tracing::info!(max_connections = limits.max_connections, "HTTP limits");
    listen::serve(listener, router(state), limits, shutdown).await;
    Ok(())
}

/// Descriptors kept, at most, for what is not a client connection: the
/// store's files and connections, logs, job commands' pipes.
pub const RESERVED_FILES: u64 = 256;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// Log output written on this thread while the returned guard lives.
    fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("log").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(sink.clone()))
            .with_ansi(false)
            .finish();
        (buffer, tracing::subscriber::set_default(subscriber))
    }

    async fn boom() -> &'static str {
        panic!("kaboom")
    }

    #[tokio::test]
    async fn a_panic_is_an_internal_error_whose_message_is_logged_not_shown() {
        let (logs, _guard) = capture_logs();
        let app = with_layers(
            Router::new().route("/boom/{n}", get(boom)),
            1024,
            Duration::from_secs(30),
            guard::Guard::from_settings(&crate::config::Settings::default()),
        );
        let request = Request::get("/boom/1")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["error"], "InternalError");
        assert!(!body.to_string().contains("kaboom"), "{body}");
        let logs = String::from_utf8(logs.lock().expect("log").clone()).expect("UTF-8");
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains("kaboom")).collect();
        assert_eq!(lines.len(), 1, "{logs}");
        assert!(
            lines[0].contains("ERROR") && lines[0].contains("route=\"/boom/{n}\""),
            "{logs}"
        );
    }
}
