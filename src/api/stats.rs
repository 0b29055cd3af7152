//! `/queue/stats` and `/health`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::state::AppState;
use crate::model::{JobStatus, Millis, format_millis};
use crate::store::{Serves, StoreError, StoreStats, error_chain};

/// The seed's queue statistics, every field measured.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct QueueStats {
    /// Jobs pending.
    pub pending_jobs: u64,
    /// Jobs running.
    pub running_jobs: u64,
    /// Jobs scheduled (delayed or awaiting a retry).
    pub scheduled_jobs: u64,
    /// Completed jobs still retained.
    pub completed_jobs: u64,
    /// Failed jobs still retained.
    pub failed_jobs: u64,
    /// Cancelled jobs still retained.
    pub cancelled_jobs: u64,
    /// Sum of the above.
    pub total_jobs: u64,
    /// The store backend: `sqlite` or `redis`.
    pub queue_type: String,
    /// Job snapshots this process holds for its watchers (long-polls, SSE
    /// streams, running jobs).
    pub cache_size: usize,
    /// Workers heartbeating within the lease time-out.
    pub active_workers: usize,
    /// This process's CPU use since the previous stats call, percent of one core.
    pub cpu_usage_percent: f64,
    /// This process's resident memory.
    pub memory_usage_mb: f64,
    /// The global limit.
    pub global_max_concurrent_jobs: usize,
    /// The per-user limit.
    pub per_user_max_concurrent_jobs: usize,
    /// `healthy`, `degraded` (stale workers registered), `no_workers`, or
    /// `unhealthy` (store unreachable; then the request fails with 503).
    pub worker_health_status: String,
    /// Last retention cleanup by any process, if one ran.
    #[schema(required = true, format = DateTime)]
    pub last_cleanup: Option<String>,
}

/// The 503 answer of `/queue/stats` when the store is unreachable: the
/// error shape plus the health status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct StatsUnavailable {
    /// `StoreUnavailableError`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
    /// `store_unavailable`.
    pub worker_health_status: String,
}

/// One registered worker, as `/workers` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct WorkerView {
    /// The worker's id.
    pub worker_id: String,
    /// Host name it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Jobs it runs at once at most.
    pub concurrency: usize,
    /// True for a remote worker (over the HTTP worker protocol), which runs
    /// only the remote job types it lists in `job_types`; false for a
    /// built-in worker, which runs every type not declared remote.
    pub remote: bool,
    /// The remote job types it serves; empty for a built-in worker.
    pub job_types: Vec<String>,
    /// When it registered.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// Its last heartbeat.
    #[schema(format = DateTime)]
    pub last_heartbeat: String,
    /// The jobs it holds.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub running_jobs: Vec<crate::model::JobId>,
    /// True when its heartbeat is older than the lease time-out.
    pub stale: bool,
}

/// Answer of `GET /api/v1/jobs/workers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct WorkerList {
    /// Every registered worker, stale ones included.
    pub workers: Vec<WorkerView>,
}

/// Answer of `GET /health` while the store answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    pub status: String,
    /// The store backend: `sqlite` or `redis`.
    pub store: String,
}

fn health(stats: &StoreStats) -> &'static str {
    if stats.active_workers == 0 {
        "no_workers"
    } else if stats.stale_workers > 0 {
        "degraded"
    } else {
        "healthy"
    }
}

/// Workers heartbeating within this long count as active.
pub(crate) fn active_within(state: &AppState) -> Duration {
    state.settings.lease_timeout
}

/// Workers heartbeating since this time count as active.
pub(crate) fn active_since(state: &AppState) -> Millis {
    state.store.clock().ago(active_within(state))
}

/// `GET /api/v1/jobs/queue/stats`. When the store is unreachable: 503 with
/// the error shape plus `"worker_health_status": "store_unavailable"`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/queue/stats",
    tag = "queue",
    summary = "Queue statistics",
    responses(
        (status = 200, description = "Counts per status, workers, limits and this process's resources", body = QueueStats),
        (status = 503, description = "The store is unreachable", body = StatsUnavailable),
    )
)]
pub(crate) async fn queue_stats(State(state): State<AppState>) -> Response {
    match current_stats(&state).await {
        Ok(stats) => Json(stats).into_response(),
        Err(unavailable) => unavailable.into_response(),
    }
}

/// The statistics now, or the 503 answer when the store is unreachable.
/// Shared by `/queue/stats` and the dashboard's live stream.
/// Not logged here: a request's failure is logged with the request, the
/// dashboard's once per outage.
pub(crate) async fn current_stats(state: &AppState) -> Result<QueueStats, StatsError> {
    match state.store.stats(active_within(state)).await {
        Ok(stats) => Ok(measure(state, &stats)),
        Err(e) => Err(StatsError(ApiError::from(e))),
    }
}

/// A failed statistics read; renders as [`StatsUnavailable`].
#[derive(Debug)]
pub(crate) struct StatsError(pub ApiError);

impl StatsError {
    /// The body of the answer.
    pub(crate) fn body(&self) -> StatsUnavailable {
        StatsUnavailable {
            error: self.0.name().to_owned(),
            message: self.0.to_string(),
            worker_health_status: "store_unavailable".into(),
        }
    }
}

impl IntoResponse for StatsError {
    fn into_response(self) -> Response {
        let body = Json(self.body());
        self.0.respond_with(body)
    }
}

fn measure(state: &AppState, stats: &StoreStats) -> QueueStats {
    let count = |status: JobStatus| {
        stats
            .counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    };
    let (cpu, memory) = state.monitor.sample();
    QueueStats {
        pending_jobs: count(JobStatus::Pending),
        running_jobs: count(JobStatus::Running),
        scheduled_jobs: count(JobStatus::Scheduled),
        completed_jobs: count(JobStatus::Completed),
        failed_jobs: count(JobStatus::Failed),
        cancelled_jobs: count(JobStatus::Cancelled),
        total_jobs: stats.counts.iter().map(|(_, n)| n).sum(),
        queue_type: state.store.kind().to_owned(),
        cache_size: state.bus.cache_size(),
        active_workers: stats.active_workers,
        cpu_usage_percent: cpu,
        memory_usage_mb: memory,
        global_max_concurrent_jobs: state.settings.global_max_concurrent_jobs,
        per_user_max_concurrent_jobs: state.settings.per_user_max_concurrent_jobs,
        worker_health_status: health(stats).to_owned(),
        last_cleanup: stats.last_cleanup.map(format_millis),
    }
}

/// `GET /api/v1/jobs/workers`: the worker registry.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/workers",
    tag = "queue",
    summary = "The worker registry",
    responses(
        (status = 200, description = "Registered workers; `stale` ones stopped heartbeating", body = WorkerList),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn workers(State(state): State<AppState>) -> Result<Json<WorkerList>, ApiError> {
    Ok(Json(worker_list(&state).await?))
}

/// The worker registry now; shared with the dashboard's live stream.
pub(crate) async fn worker_list(state: &AppState) -> Result<WorkerList, ApiError> {
    let since = active_since(state);
    let workers = state
        .store
        .workers()
        .await?
        .into_iter()
        .map(|w| WorkerView {
            stale: w.last_heartbeat < since,
            remote: matches!(w.info.serves, Serves::Remote(_)),
            job_types: match w.info.serves {
                Serves::BuiltIn => Vec::new(),
                Serves::Remote(types) => types,
            },
            worker_id: w.info.worker_id,
            host: w.info.host,
            pid: w.info.pid,
            concurrency: w.info.concurrency,
            started_at: format_millis(w.info.started_at),
            last_heartbeat: format_millis(w.last_heartbeat),
            running_jobs: w.running_jobs,
        })
        .collect();
    Ok(WorkerList { workers })
}

/// How long `/health` gives the store to answer its read and its write
/// probe together: a load balancer's check times out after a few seconds.
const HEALTH_DEADLINE: Duration = Duration::from_secs(2);

/// `GET /health`: 200 while the store answers a read and takes a write,
/// 503 otherwise (a load balancer then sends requests elsewhere).
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "Liveness, store reachability and writability",
    description = "200 while the store answers a read and takes a one-key write probe, \
        both within 2 s. 503 `StoreUnavailableError` otherwise: when the store does not \
        answer, and when it answers but refuses writes (a full disk, a Redis out of memory \
        under `noeviction`), in which case the message says writes are failing, since \
        submissions, cancels and results would all fail.",
    responses(
        (status = 200, description = "The process is up and the store answers and takes writes", body = Health),
        (status = 503, description = "`StoreUnavailableError`: the store is unreachable, or refuses writes", body = ErrorBody),
    )
)]
pub(crate) async fn health_check(State(state): State<AppState>) -> impl IntoResponse {
    let checks = async {
        state.store.ping().await.map_err(ApiError::from)?;
        state.store.probe_write().await.map_err(|e| match e {
            StoreError::Unavailable { .. } => ApiError::StoreWritesFailing(error_chain(&e)),
            other => ApiError::from(other),
        })
    };
    let checked = tokio::time::timeout(HEALTH_DEADLINE, checks)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::StoreUnavailable(format!(
                "health check: no answer from the store within {HEALTH_DEADLINE:?}"
            )))
        });
    match checked {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
                store: state.store.kind().to_owned(),
            }),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
