//! `/queue/stats` and `/health`.

use std::sync::Mutex;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use super::AppState;
use super::error::ApiError;
use crate::model::{JobStatus, Millis, format_millis, now_millis};
use crate::store::StoreStats;

/// The seed's queue statistics, every field measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueStats {
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
    pub last_cleanup: Option<String>,
}

/// Samples this process's CPU and memory use.
pub struct ProcessMonitor {
    system: Option<Mutex<System>>,
    pid: Option<Pid>,
}

impl ProcessMonitor {
    /// A monitor of the current process.
    pub fn new() -> ProcessMonitor {
        ProcessMonitor {
            system: System::new().ok().map(Mutex::new),
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    /// CPU percent since the last sample, and resident MiB.
    pub fn sample(&self) -> (f64, f64) {
        let (Some(pid), Some(system)) = (self.pid, self.system.as_ref()) else {
            return (0.0, 0.0);
        };
        let mut system = system
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        match system.process(pid) {
            Some(process) => (
                (process.cpu_usage() as f64 * 10.0).round() / 10.0,
                (process.memory() as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            ),
            None => (0.0, 0.0),
        }
    }
}

impl Default for ProcessMonitor {
    fn default() -> ProcessMonitor {
        ProcessMonitor::new()
    }
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

/// Workers heartbeating since this time count as active.
fn active_since(state: &AppState) -> Millis {
    now_millis() - state.settings.lease_timeout.as_millis() as Millis
}

/// `GET /api/v1/jobs/queue/stats`. When the store is unreachable: 503 with
/// the error shape plus `"worker_health_status": "store_unavailable"`.
pub async fn queue_stats(State(state): State<AppState>) -> Response {
    match state.store.stats(active_since(&state)).await {
        Ok(stats) => Json(measure(&state, &stats)).into_response(),
        Err(e) => {
            let error = ApiError::from(e);
            tracing::error!(cause = %error, "stats: store unavailable");
            let body = json!({
                "error": error.name(),
                "message": error.to_string(),
                "worker_health_status": "store_unavailable",
            });
            (error.status_code(), Json(body)).into_response()
        }
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
pub async fn workers(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let since = active_since(&state);
    let workers: Vec<_> = state
        .store
        .workers()
        .await?
        .into_iter()
        .map(|w| {
            json!({
                "worker_id": w.info.worker_id,
                "host": w.info.host,
                "pid": w.info.pid,
                "concurrency": w.info.concurrency,
                "started_at": format_millis(w.info.started_at),
                "last_heartbeat": format_millis(w.last_heartbeat),
                "running_jobs": w.running_jobs,
                "stale": w.last_heartbeat < since,
            })
        })
        .collect();
    Ok(Json(json!({ "workers": workers })))
}

/// `GET /health`: 200 while the store answers, 503 otherwise.
pub async fn health_check(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "store": state.store.kind() })),
        )
            .into_response(),
        Err(e) => ApiError::StoreUnavailable(e.to_string()).into_response(),
    }
}
