//! "Why is this job pending?": what holds a waiting job back, computed from
//! the store's state now (the user's running jobs, the global running
//! count, the workers alive and their free slots), for the dashboard's hint
//! and for anyone asking the API.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{JobIdParam, JobIdPath};
use super::schema::JobStatusSchema;
use super::state::AppState;
use super::stats::{active_since, active_within};
use crate::model::{Job, JobId, JobStatus, Millis, format_millis};
use crate::store::{ClaimLimits, ListQuery, WorkerRecord, rate_scope};

/// What holds a job back, most decisive first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WaitReason {
    /// The job is not waiting: it runs or has ended.
    NotWaiting,
    /// The job is scheduled for later (a delay, or a retry's backoff).
    Scheduled,
    /// The job waits for jobs it depends on to complete.
    Dependencies,
    /// No worker has heartbeated within the lease time-out.
    NoWorkers,
    /// Workers are alive, but none that serves the job's type: for a remote
    /// type (`[job_types.NAME] remote = true`), no live remote worker lists
    /// it; for any other type, only remote workers are alive.
    NoWorkerForType,
    /// Running jobs have reached `global_max_concurrent_jobs`.
    GlobalLimit,
    /// The job's user has `per_user_max_concurrent_jobs` jobs running.
    UserLimit,
    /// Jobs of its type with its concurrency key (`concurrency_key` in the
    /// answer) run at the type's `max_concurrent_per_key`.
    KeyLimit,
    /// Jobs of its type run at the type's `max_concurrent`.
    TypeLimit,
    /// Its type's `rate_limit` window is full; it opens at
    /// `rate_limit_opens_at`.
    RateLimited,
    /// Every live worker runs as many jobs as it may at once.
    WorkersBusy,
    /// Nothing blocks it: a worker claims it on its next round (users are
    /// served round-robin, and within a user higher priority goes first).
    NextInLine,
}

/// One reason, with a sentence for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct WaitHint {
    /// The reason.
    pub reason: WaitReason,
    /// What it means for this job, with the figures.
    pub message: String,
}

/// Answer of `GET /api/v1/jobs/status/{job_id}/why`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct WhyPending {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// Its status now.
    #[schema(value_type = JobStatusSchema)]
    pub status: JobStatus,
    /// Every reason that applies, most decisive first; never empty.
    pub reasons: Vec<WaitHint>,
    /// The job's user.
    pub user_id: String,
    /// Jobs of that user running now.
    pub user_running_jobs: u64,
    /// The per-user limit.
    pub per_user_max_concurrent_jobs: usize,
    /// Jobs running now, all users.
    pub running_jobs: u64,
    /// The global limit.
    pub global_max_concurrent_jobs: usize,
    /// Workers heartbeating within the lease time-out.
    pub active_workers: usize,
    /// Jobs the live workers that serve the job's type may still take on
    /// (their concurrency less what they hold).
    pub free_worker_slots: usize,
    /// The job's concurrency key, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// When the type's full rate window opens (with `rate_limited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_opens_at: Option<String>,
}

/// `GET /api/v1/jobs/status/{job_id}/why`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/status/{job_id}/why",
    tag = "jobs",
    summary = "Why a job is still waiting",
    description = "For a pending job, what keeps workers from claiming it now: no live worker, \
        no live worker that serves its type (a remote type's remote workers, or built-in \
        workers for any other type), the global limit, its user's limit, every worker \
        that serves it busy, its key's limit (`key_limit`), its type's limit \
        (`type_limit`) or its type's full rate window (`rate_limited`, with \
        `rate_limit_opens_at`) (several may apply); else \
        `next_in_line`. A scheduled job answers `dependencies` while jobs it depends on have \
        not completed, else `scheduled`; any other job `not_waiting`.",
    params(JobIdParam),
    responses(
        (status = 200, description = "The reasons and the figures behind them", body = WhyPending),
        (status = 400, description = "`InvalidJobIdError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn why(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
) -> Result<Json<WhyPending>, ApiError> {
    let job = state.store.get(id).await?;
    caller.check_sees(&job)?;
    let stats = state.store.stats(active_within(&state)).await?;
    let per_user_max = state.settings.per_user_max_concurrent_jobs;
    let user_running = state
        .store
        .list(&ListQuery {
            status: Some(JobStatus::Running),
            user_id: Some(job.user_id.clone()),
            job_type: None,
            limit: (per_user_max + 1).clamp(1, 1000),
            before: None,
            ..ListQuery::default()
        })
        .await?
        .jobs
        .len() as u64;
    let workers = state.store.workers().await?;
    let serving = serving(&workers, active_since(&state), &job);
    let running = stats
        .counts
        .iter()
        .find(|(s, _)| *s == JobStatus::Running)
        .map_or(0, |(_, n)| *n);
    let (limit_hints, opens_at) = if job.status == JobStatus::Pending {
        limit_hints(&state, &job).await?
    } else {
        (Vec::new(), None)
    };
    let figures = Figures {
        user_running,
        per_user_max,
        running,
        global_max: state.settings.global_max_concurrent_jobs,
        active_workers: stats.active_workers,
        serving_workers: serving.workers,
        free_slots: serving.free_slots,
        now: state.store.clock().now(),
    };
    Ok(Json(WhyPending {
        job_id: job.id,
        status: job.status,
        reasons: reasons(&job, &figures, limit_hints),
        concurrency_key: job.concurrency_key.clone(),
        rate_limit_opens_at: opens_at.map(format_millis),
        user_id: job.user_id,
        user_running_jobs: user_running,
        per_user_max_concurrent_jobs: per_user_max,
        running_jobs: running,
        global_max_concurrent_jobs: figures.global_max,
        active_workers: stats.active_workers,
        free_worker_slots: figures.free_slots,
    }))
}

/// The counts a verdict is made of.
struct Figures {
    user_running: u64,
    per_user_max: usize,
    running: u64,
    global_max: usize,
    active_workers: usize,
    /// Live workers that serve the job's type.
    serving_workers: usize,
    /// Slots free on those.
    free_slots: usize,
    /// The store's time.
    now: Millis,
}

/// The live workers that would run a job.
struct Serving {
    workers: usize,
    free_slots: usize,
}

/// The workers heartbeating since `active_since` that serve `job` (a
/// remote job's type, or built-in jobs), and their free slots.
fn serving(workers: &[WorkerRecord], active_since: i64, job: &Job) -> Serving {
    let live = workers
        .iter()
        .filter(|w| w.last_heartbeat >= active_since && w.info.serves.takes(job));
    Serving {
        workers: live.clone().count(),
        free_slots: live
            .map(|w| w.info.concurrency.saturating_sub(w.running_jobs.len()))
            .sum(),
    }
}

/// The limits of the job's type that hold it back now, and when a full
/// rate window opens.
async fn limit_hints(
    state: &AppState,
    job: &Job,
) -> Result<(Vec<WaitHint>, Option<Millis>), ApiError> {
    let limits = ClaimLimits::from_settings(&state.settings);
    let Some(limits) = limits.types.get(&job.job_type) else {
        return Ok((Vec::new(), None));
    };
    let mut out = Vec::new();
    let mut opens_at = None;
    if limits.type_max.is_some() || limits.per_key_max.is_some() {
        let running = state
            .store
            .list(&ListQuery {
                status: Some(JobStatus::Running),
                job_type: Some(job.job_type.clone()),
                limit: 1000,
                ..ListQuery::default()
            })
            .await?
            .jobs;
        if let Some(max) = limits.type_max
            && running.len() >= max
        {
            out.push(WaitHint {
                reason: WaitReason::TypeLimit,
                message: format!(
                    "Job type '{}' is at its limit: {} of {max} jobs running",
                    job.job_type,
                    running.len()
                ),
            });
        }
        if let (Some(max), Some(key)) = (limits.per_key_max, &job.concurrency_key) {
            let with_key = running
                .iter()
                .filter(|r| r.concurrency_key.as_ref() == Some(key))
                .count();
            if with_key >= max {
                out.push(WaitHint {
                    reason: WaitReason::KeyLimit,
                    message: format!(
                        "Key '{key}' of job type '{}' is at its limit: {with_key} of {max} \
                         jobs running",
                        job.job_type
                    ),
                });
            }
        }
    }
    if let Some(rate) = limits.rate
        && let Some(scope) = rate_scope(&job.job_type, job.concurrency_key.as_deref(), rate.per_key)
        && let Some(window) = state.store.rate_window(&scope).await?
        && window.started >= rate.count as u64
    {
        opens_at = Some(window.closes_at);
        out.push(WaitHint {
            reason: WaitReason::RateLimited,
            message: format!(
                "The rate limit of job type '{}'{} is reached: {} of {} starts per {} s; \
                 the next window opens at {}",
                job.job_type,
                if rate.per_key { " for its key" } else { "" },
                window.started,
                rate.count,
                rate.per.as_secs_f64(),
                format_millis(window.closes_at)
            ),
        });
    }
    Ok((out, opens_at))
}

fn reasons(job: &Job, f: &Figures, limits: Vec<WaitHint>) -> Vec<WaitHint> {
    let hint = |reason, message: String| WaitHint { reason, message };
    match job.status {
        JobStatus::Pending => {}
        JobStatus::Scheduled if job.waiting_dependencies > 0 => {
            return vec![hint(
                WaitReason::Dependencies,
                format!(
                    "Waits for {} of its {} dependencies to complete",
                    job.waiting_dependencies,
                    job.depends_on.len()
                ),
            )];
        }
        JobStatus::Scheduled => {
            let when = job
                .scheduled_for
                .map_or_else(|| "its due time".to_owned(), format_millis);
            let past = job.scheduled_for.is_some_and(|at| at <= f.now);
            let message = if past {
                format!("Scheduled for {when}; it becomes pending within about a second")
            } else {
                format!("Scheduled for {when}; it becomes pending then")
            };
            return vec![hint(WaitReason::Scheduled, message)];
        }
        status => {
            return vec![hint(
                WaitReason::NotWaiting,
                format!("The job is {status}, not waiting for a worker"),
            )];
        }
    }
    let mut out = Vec::new();
    if f.active_workers == 0 && !job.remote {
        out.push(hint(
            WaitReason::NoWorkers,
            "No worker is alive: none has sent a heartbeat within the lease time-out. \
             Start `jobd serve` with workers or a `jobd worker`."
                .to_owned(),
        ));
    } else if f.serving_workers == 0 && job.remote {
        out.push(hint(
            WaitReason::NoWorkerForType,
            format!(
                "No live worker serves job type '{}': it is declared remote, and no remote \
                 worker for it has sent a heartbeat within the lease time-out",
                job.job_type
            ),
        ));
    } else if f.serving_workers == 0 {
        out.push(hint(
            WaitReason::NoWorkerForType,
            format!(
                "No live worker serves job type '{}': only remote workers are alive. \
                 Start `jobd serve` with workers or a `jobd worker`.",
                job.job_type
            ),
        ));
    }
    if f.running >= f.global_max as u64 {
        out.push(hint(
            WaitReason::GlobalLimit,
            format!(
                "The global limit is reached: {} of {} jobs running",
                f.running, f.global_max
            ),
        ));
    }
    if f.user_running >= f.per_user_max as u64 {
        out.push(hint(
            WaitReason::UserLimit,
            format!(
                "Its user '{}' is at the per-user limit: {} of {} jobs running",
                job.user_id, f.user_running, f.per_user_max
            ),
        ));
    }
    if f.serving_workers > 0 && f.free_slots == 0 {
        out.push(hint(
            WaitReason::WorkersBusy,
            format!(
                "All {} live worker(s) that serve it run as many jobs as they may at once",
                f.serving_workers
            ),
        ));
    }
    out.extend(limits);
    if out.is_empty() {
        out.push(hint(
            WaitReason::NextInLine,
            "Nothing blocks it: a worker claims it on its next round \
             (users take turns; within a user, higher priority first)"
                .to_owned(),
        ));
    }
    out
}
