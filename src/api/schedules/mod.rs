//! Schedules over HTTP: `GET /api/v1/schedules` lists them with their last
//! and next run and last job; admins create (`POST`), pause, resume and
//! delete them. The configuration file's `[schedules.NAME]` are written to
//! the store by every server that starts ([`put_configured`]); the
//! [`ticker`] of every server fires them, the store keeping it to one job
//! per tick.

pub(crate) mod ticker;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::audit::Requester;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, JsonBody};
use super::jobs::SubmitRequest;
use super::schema::JobStatusSchema;
use super::state::AppState;
use crate::model::audit::AuditAction;
use crate::model::{
    Cadence, JobId, JobStatus, Millis, NewJob, Schedule, ScheduleOrigin, ScheduleSpec,
    check_schedule_name, format_millis,
};
use crate::store::StoreError;

/// The job `spec` submits, checked as `POST /api/v1/jobs` checks a
/// submission (the job type's defaults apply).
pub(crate) fn job_of(spec: &ScheduleSpec, state: &AppState) -> Result<NewJob, ApiError> {
    SubmitRequest {
        job_type: spec.job_type.clone(),
        parameters: spec.parameters.clone(),
        user_id: spec.user_id.clone(),
        priority: spec.priority,
        max_attempts: spec.max_attempts,
        timeout_seconds: spec.timeout_seconds,
        expires_in_seconds: spec.expires_in_seconds,
        ..SubmitRequest::default()
    }
    .validate(&Caller::open(None), state)
}

/// Checks `spec` whole: its cron expression, zone and job.
fn check(spec: &ScheduleSpec, state: &AppState) -> Result<(), ApiError> {
    Cadence::of(spec).map_err(ApiError::Validation)?;
    job_of(spec, state).map(drop)
}

/// Writes the configuration file's schedules to the store (a changed
/// definition replaces the stored one; pauses and ticks stay). A schedule
/// whose job would be refused stops the server.
pub(crate) async fn put_configured(state: &AppState) -> anyhow::Result<()> {
    for (name, spec) in &state.settings.schedules {
        check(spec, state).map_err(|e| anyhow::anyhow!("schedule {name}: {e}"))?;
        state
            .store
            .put_schedule(name, spec, ScheduleOrigin::Config, true)
            .await?;
    }
    Ok(())
}

/// Body of `POST /api/v1/schedules`. Unknown fields are a 400.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "nightly-report", "cron": "0 3 * * *", "timezone": "Europe/Paris", "job_type": "sleep", "parameters": {"seconds": 1}, "user_id": "ops"}))]
pub(crate) struct CreateScheduleRequest {
    /// 1 to 128 of `A-Za-z0-9_.-`.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.-]+$")]
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), or six
    /// with seconds first.
    pub cron: String,
    /// The IANA time zone the expression is read in (default `UTC`).
    pub timezone: Option<String>,
    /// A configured job type.
    pub job_type: String,
    /// Every job's parameters (a JSON object).
    pub parameters: Option<Value>,
    /// The user the jobs are submitted for (default `default_user`).
    pub user_id: Option<String>,
    /// Priority within the user's queue (default 0).
    pub priority: Option<i32>,
    /// Attempts per job (default: the job type's).
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit (default: the job type's).
    pub timeout_seconds: Option<f64>,
    /// Seconds after its tick each job must have started by (default: the
    /// job type's).
    pub expires_in_seconds: Option<f64>,
}

/// A schedule, with where its runs stand.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ScheduleView {
    /// Its name.
    pub name: String,
    /// Its cron expression.
    pub cron: String,
    /// The IANA time zone it is read in.
    pub timezone: String,
    /// The job type of its jobs.
    pub job_type: String,
    /// Its jobs' parameters.
    pub parameters: Value,
    /// The user its jobs are submitted for.
    #[schema(required = true)]
    pub user_id: Option<String>,
    /// Its jobs' priority, if set.
    #[schema(required = true)]
    pub priority: Option<i32>,
    /// Its jobs' attempts, if set.
    #[schema(required = true)]
    pub max_attempts: Option<u32>,
    /// Its jobs' time limit, if set.
    #[schema(required = true)]
    pub timeout_seconds: Option<f64>,
    /// Its jobs' deadline to start by, from their tick, if set.
    #[schema(required = true)]
    pub expires_in_seconds: Option<f64>,
    /// `config` (the configuration file's; every server writes it again
    /// when it starts) or `api`.
    pub origin: String,
    /// Paused: its ticks pass without jobs.
    pub paused: bool,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When its definition or pause last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The last tick a job was stored for.
    #[schema(format = DateTime, required = true)]
    pub last_run_at: Option<String>,
    /// The next tick (none while paused).
    #[schema(format = DateTime, required = true)]
    pub next_run_at: Option<String>,
    /// The job stored for the last tick.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub last_job_id: Option<JobId>,
    /// That job's status now (none once retention deleted it).
    #[schema(value_type = Option<JobStatusSchema>, required = true)]
    pub last_job_status: Option<JobStatus>,
}

/// Answer of `GET /api/v1/schedules`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ScheduleList {
    /// Every schedule, by name.
    pub schedules: Vec<ScheduleView>,
}

/// The view of `schedule` as of `now`, with its last job's status.
async fn view(state: &AppState, schedule: Schedule, now: Millis) -> Result<ScheduleView, ApiError> {
    let last_job_status = match schedule.last_job_id {
        Some(id) => match state.store.get(id).await {
            Ok(job) => Some(job.status),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let next_run_at = match (schedule.paused, Cadence::of(&schedule.spec)) {
        (false, Ok(cadence)) => cadence.next_after(now).map(format_millis),
        _ => None,
    };
    let Schedule { name, spec, .. } = schedule;
    Ok(ScheduleView {
        name,
        cron: spec.cron,
        timezone: spec.timezone,
        job_type: spec.job_type,
        parameters: spec
            .parameters
            .unwrap_or_else(|| Value::Object(Default::default())),
        user_id: spec.user_id,
        priority: spec.priority,
        max_attempts: spec.max_attempts,
        timeout_seconds: spec.timeout_seconds,
        expires_in_seconds: spec.expires_in_seconds,
        origin: schedule.origin.as_str().to_owned(),
        paused: schedule.paused,
        created_at: format_millis(schedule.created_at),
        updated_at: format_millis(schedule.updated_at),
        last_run_at: schedule.last_tick_at.map(format_millis),
        next_run_at,
        last_job_id: schedule.last_job_id,
        last_job_status,
    })
}

/// The schedule `name`, or a 404.
async fn find(state: &AppState, name: &str) -> Result<Schedule, ApiError> {
    state
        .store
        .schedules()
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::ScheduleNotFound(name.to_owned()))
}

/// `GET /api/v1/schedules`.
#[utoipa::path(
    get,
    path = "/api/v1/schedules",
    tag = "schedules",
    summary = "List schedules",
    description = "Every schedule by name, with its last and next run and its last job.",
    responses(
        (status = 200, description = "The schedules", body = ScheduleList),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn list_schedules(
    State(state): State<AppState>,
) -> Result<Json<ScheduleList>, ApiError> {
    let now = state.store.clock().now();
    let stored = state.store.schedules().await?;
    let views = futures::future::try_join_all(
        stored
            .into_iter()
            .map(|schedule| view(&state, schedule, now)),
    )
    .await?;
    Ok(Json(ScheduleList { schedules: views }))
}

/// `GET /api/v1/schedules/{name}`.
#[utoipa::path(
    get,
    path = "/api/v1/schedules/{name}",
    tag = "schedules",
    summary = "Read a schedule",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "`ScheduleNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn get_schedule(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = find(&state, &name).await?;
    Ok(Json(
        view(&state, schedule, state.store.clock().now()).await?,
    ))
}

/// `POST /api/v1/schedules`.
#[utoipa::path(
    post,
    path = "/api/v1/schedules",
    tag = "schedules",
    summary = "Create a schedule (admin)",
    description = "From its first tick after now, every tick stores one job, on however many \
        servers. Ticks missed while no server ran are caught up once, not once each.",
    request_body(content = CreateScheduleRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The schedule", body = ScheduleView),
        (status = 400, description = "`ValidationError` or `UnknownJobTypeError`", body = ErrorBody),
        (status = 409, description = "`ScheduleExistsError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn create_schedule(
    State(state): State<AppState>,
    requester: Requester,
    JsonBody(body): JsonBody<CreateScheduleRequest>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let request = body.ok_or_else(|| ApiError::Validation("a JSON body is required".into()))?;
    check_schedule_name(&request.name).map_err(ApiError::Validation)?;
    let spec = ScheduleSpec {
        cron: request.cron,
        timezone: request.timezone.unwrap_or_else(|| "UTC".to_owned()),
        job_type: request.job_type,
        parameters: request.parameters,
        user_id: request.user_id,
        priority: request.priority,
        max_attempts: request.max_attempts,
        timeout_seconds: request.timeout_seconds,
        expires_in_seconds: request.expires_in_seconds,
    };
    check(&spec, &state)?;
    let (schedule, created) = state
        .store
        .put_schedule(&request.name, &spec, ScheduleOrigin::Api, false)
        .await?;
    if !created {
        return Err(ApiError::ScheduleExists(request.name));
    }
    state.audit.record(
        &requester,
        AuditAction::ScheduleCreate,
        Some(schedule.name.clone()),
        StatusCode::CREATED.as_u16(),
    );
    let now = state.store.clock().now();
    Ok((
        StatusCode::CREATED,
        Json(view(&state, schedule, now).await?),
    ))
}

/// Pauses or resumes the schedule `name`, recorded as `action`.
async fn set_paused(
    state: &AppState,
    requester: &Requester,
    name: String,
    paused: bool,
    action: AuditAction,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = state
        .store
        .pause_schedule(&name, paused)
        .await?
        .ok_or(ApiError::ScheduleNotFound(name))?;
    state.audit.record(
        requester,
        action,
        Some(schedule.name.clone()),
        StatusCode::OK.as_u16(),
    );
    let now = state.store.clock().now();
    Ok(Json(view(state, schedule, now).await?))
}

/// `POST /api/v1/schedules/{name}/pause`.
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{name}/pause",
    tag = "schedules",
    summary = "Pause a schedule (admin)",
    description = "Its ticks pass without jobs until it is resumed. Pausing a paused schedule \
        changes nothing.",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "The schedule, paused", body = ScheduleView),
        (status = 404, description = "`ScheduleNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn pause_schedule(
    State(state): State<AppState>,
    requester: Requester,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, &requester, name, true, AuditAction::SchedulePause).await
}

/// `POST /api/v1/schedules/{name}/resume`.
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{name}/resume",
    tag = "schedules",
    summary = "Resume a schedule (admin)",
    description = "Its next tick after now stores a job; the ticks it was paused over are not \
        caught up. Resuming a running schedule changes nothing.",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "The schedule, resumed", body = ScheduleView),
        (status = 404, description = "`ScheduleNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn resume_schedule(
    State(state): State<AppState>,
    requester: Requester,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, &requester, name, false, AuditAction::ScheduleResume).await
}

/// `DELETE /api/v1/schedules/{name}`.
#[utoipa::path(
    delete,
    path = "/api/v1/schedules/{name}",
    tag = "schedules",
    summary = "Delete a schedule (admin)",
    description = "No more jobs; those it stored stay. A schedule of the configuration file \
        comes back when a server starts with it: remove it from the file too.",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`ScheduleNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn delete_schedule(
    State(state): State<AppState>,
    requester: Requester,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_schedule(&name).await? {
        return Err(ApiError::ScheduleNotFound(name));
    }
    state.audit.record(
        &requester,
        AuditAction::ScheduleDelete,
        Some(name),
        StatusCode::NO_CONTENT.as_u16(),
    );
    Ok(StatusCode::NO_CONTENT)
}
