//! `register` and `unregister`: a remote worker joins the registry, and
//! leaves it giving its jobs back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ClaimBody, MAX_CONCURRENCY, WorkerBody, invalid};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::JsonBody;
use crate::api::state::AppState;
use crate::store::ClaimRef;

/// Body of `register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    /// Its id (1 to 128 of `[A-Za-z0-9_.:@-]`); made up when absent.
    pub worker_id: Option<String>,
    /// The host it runs on.
    pub host: String,
    /// Its process id there.
    #[serde(default)]
    pub pid: u32,
    /// The remote job types it runs (each declared `remote = true`).
    pub job_types: Vec<String>,
    /// Jobs it runs at once, 1 to 1024 (default 1).
    pub concurrency: Option<usize>,
}

/// Answer of `register`: the registration to echo, and the protocol's
/// timings.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Registered {
    /// Echo this in every later call.
    pub worker: WorkerBody,
    /// Call `exchange` at least this often (it renews the registration and
    /// the leases of the jobs held).
    pub heartbeat_seconds: f64,
    /// A claim not renewed for this long is recovered from the worker.
    pub lease_seconds: f64,
    /// The longest `wait_seconds` an `exchange` takes.
    pub max_wait_seconds: f64,
}

/// `POST /api/v1/workers/register`.
#[utoipa::path(
    post,
    path = "/api/v1/workers/register",
    tag = "workers",
    summary = "Register a remote worker",
    description = "Enters a remote worker in the registry (dashboard, `/queue/stats`, \
        `/queue/workers`) for the remote job types it runs. Echo the answer's `worker` in \
        every later call.",
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered", body = Registered),
        (status = 400, description = "`ValidationError`: a bad field, or a job type that is \
            not declared `remote = true`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> Result<Json<Registered>, ApiError> {
    let request = body.ok_or_else(|| invalid("a JSON body with host and job_types is required"))?;
    let worker_id = request.worker_id.unwrap_or_else(|| {
        let short = Uuid::new_v4().simple().to_string();
        format!("{}:{}:{}", request.host, request.pid, &short[..8])
    });
    let worker = WorkerBody {
        worker_id,
        host: request.host,
        pid: request.pid,
        started_at: state.store.clock().now(),
        job_types: request.job_types,
        concurrency: request.concurrency.unwrap_or(1),
    };
    let info = worker.info(&state)?;
    let settings = &state.settings;
    state
        .store
        .heartbeat(&info, &[], settings.lease_timeout)
        .await?;
    tracing::info!(worker_id = %info.worker_id, host = %info.host, serves = ?info.serves, "remote worker registered");
    Ok(Json(Registered {
        worker,
        heartbeat_seconds: settings.heartbeat_interval.as_secs_f64(),
        lease_seconds: settings.lease_timeout.as_secs_f64(),
        max_wait_seconds: super::exchange::max_wait(settings).as_secs_f64(),
    }))
}

/// Body of `unregister`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnregisterRequest {
    /// The registration, as echoed.
    pub worker: WorkerBody,
    /// Claims to give back to the queue without spending an attempt.
    #[serde(default)]
    pub release: Vec<ClaimBody>,
}

/// `POST /api/v1/workers/unregister`.
#[utoipa::path(
    post,
    path = "/api/v1/workers/unregister",
    tag = "workers",
    summary = "Unregister a remote worker",
    description = "Gives the listed claims back to the queue without spending an attempt \
        (claims already gone are skipped) and removes the worker from the registry: a \
        graceful shutdown.",
    request_body = UnregisterRequest,
    responses(
        (status = 204, description = "Unregistered"),
        (status = 400, description = "`ValidationError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn unregister(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<UnregisterRequest>,
) -> Result<StatusCode, ApiError> {
    let request = body.ok_or_else(|| invalid("a JSON body with worker is required"))?;
    let info = request.worker.info(&state)?;
    if request.release.len() > MAX_CONCURRENCY {
        return Err(invalid(format!(
            "release lists at most {MAX_CONCURRENCY} claims"
        )));
    }
    let claims: Vec<ClaimRef> = request.release.into_iter().map(ClaimRef::from).collect();
    if !claims.is_empty() {
        state.store.release(&claims).await?;
    }
    state.store.unregister_worker(&info.worker_id).await?;
    tracing::info!(worker_id = %info.worker_id, released = claims.len(), "remote worker unregistered");
    Ok(StatusCode::NO_CONTENT)
}
