//! Submitting, reading, listing, cancelling and restarting jobs.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::audit::Requester;
use super::auth::Caller;
use super::debounce::{DEBOUNCED_HEADER, DebounceRequest};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, JobIdParam, JobIdPath, JsonBody, check_user_id, page_params};
use super::idempotency::{REPLAYED_HEADER, idempotency_key};
use super::schema::{JobSchema, JobStatusSchema, status_or_empty};
use super::state::AppState;
use crate::model::audit::AuditAction;
use crate::model::{Job, JobId, JobStatus, JobView, Millis, NewJob, Submitted, new_job_id};
use crate::store::{ListQuery, StoreError};

/// The user of a job submitted with none.
pub(crate) const DEFAULT_USER: &str = "default_user";

/// Furthest a job may be scheduled ahead.
const MAX_DELAY_SECONDS: f64 = 366.0 * 86400.0;

/// Longest accepted per-job time limit.
const MAX_TIMEOUT_SECONDS: f64 = 7.0 * 86400.0;

/// Most attempts a job may ask for.
const MAX_ATTEMPTS: u32 = 100;

/// Most dependencies a job may have.
const MAX_DEPENDENCIES: usize = 100;

/// Most bytes of `parameters`, `result` and `error` a listing page
/// carries: once the next job would pass it, the page ends there with its
/// `next_cursor` (a page always holds at least one job). The other fields
/// are bounded, so this bounds the page.
pub(crate) const MAX_PAGE_BYTES: usize = 16 << 20;

/// Body of `POST /api/v1/jobs`. Unknown fields are a 400.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"job_type": "sleep", "parameters": {"seconds": 5, "steps": 10}, "user_id": "alice"}))]
pub(crate) struct SubmitRequest {
    /// A configured job type.
    pub job_type: String,
    /// The job's input; a JSON object (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// Owner; else `X-User-Id`, else `default_user`. 1 to 128 characters,
    /// not only whitespace, without control, format (such as zero-width or
    /// bidirectional controls) or other invisible characters.
    #[schema(min_length = 1, max_length = 128)]
    pub user_id: Option<String>,
    /// Higher runs first within the user's queue (default 0).
    pub priority: Option<i32>,
    /// When to run: RFC 3339; without an offset it is taken as UTC. Not
    /// with `delay_seconds`.
    pub run_at: Option<String>,
    /// Or: seconds from now, at most a year.
    #[schema(minimum = 0.0)]
    pub delay_seconds: Option<f64>,
    /// Attempts allowed, 1 to 100 (default: the job type's, else 1).
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit (default: the job type's, else none).
    pub timeout_seconds: Option<f64>,
    /// Jobs that must complete first (at most 100); the job waits as
    /// `scheduled` until they have, and is cancelled if one fails. A job
    /// named twice counts once (the first occurrence is kept). In a batch,
    /// an entry may also be the position (from 0) of an earlier job of
    /// the same batch.
    #[schema(max_items = 100)]
    pub depends_on: Option<Vec<Dependency>>,
    /// The value the job type's per-key limit (`max_concurrent_per_key`)
    /// counts this job by; overrides the type's `concurrency_key` pointer
    /// into the parameters. 1 to 256 characters.
    #[schema(min_length = 1, max_length = 256)]
    pub concurrency_key: Option<String>,
    /// Makes retries of this submission safe: a repeat with the same key
    /// and the same body, by the same user, within
    /// `idempotency_ttl_seconds`, answers 200 with the job the first one
    /// stored; with another body, 422. Or the `Idempotency-Key` header.
    #[serde(skip_serializing)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[!-~]+$")]
    pub idempotency_key: Option<String>,
    /// Collapses bursts: while the job stored by an earlier submission of
    /// the same user and job type with this key still waits (scheduled,
    /// not started), a submission answers 200 with that job, whose
    /// parameters, priority, max_attempts, timeout_seconds and deadline
    /// (`expires_in_seconds`) become this submission's; it starts `period_seconds` after the last submission
    /// but never later than `max_wait_seconds` after the first. Only in
    /// `POST /api/v1/jobs`, and not with `run_at`, `delay_seconds`,
    /// `depends_on` or an idempotency key.
    pub debounce: Option<DebounceRequest>,
    /// Seconds from now to start by (above 0, at most a year; default: the
    /// job type's `expires_in_seconds`, else none): a job still pending or
    /// scheduled then is cancelled with the error `expired`, and its
    /// dependents with it. A job that has started never expires.
    #[schema(minimum = 0.0)]
    pub expires_in_seconds: Option<f64>,
}

/// A job to wait for: its id, or, in a batch, the position of an earlier
/// job of the same batch.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Dependency {
    /// A stored job.
    #[schema(value_type = uuid::Uuid)]
    Job(JobId),
    /// An earlier job of the same batch, by position from 0.
    #[schema(value_type = u32)]
    Position(u32),
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::Validation(message.into())
}

/// Parses a timestamp: RFC 3339 with an offset, or without one as UTC.
pub(crate) fn parse_timestamp(text: &str) -> Option<Millis> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc).timestamp_millis());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc().timestamp_millis())
}

impl SubmitRequest {
    /// Checks the request against the configuration and builds the job.
    pub(crate) fn validate(self, caller: &Caller, state: &AppState) -> Result<NewJob, ApiError> {
        self.validate_in(caller, state, &[])
    }

    /// [`SubmitRequest::validate`] as an entry of a batch whose earlier
    /// jobs are `earlier`: a position in `depends_on` names one of them.
    pub(crate) fn validate_in(
        self,
        caller: &Caller,
        state: &AppState,
        earlier: &[NewJob],
    ) -> Result<NewJob, ApiError> {
        if self.debounce.is_some() {
            return Err(validation(
                "debounce is accepted only by POST /api/v1/jobs, one job at a time",
            ));
        }
        let Some(job_type) = state.registry.get(&self.job_type) else {
            return Err(ApiError::UnknownJobType {
                given: self.job_type,
                known: state.registry.names().join(", "),
            });
        };
        let parameters = match self.parameters {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(Value::Object(map)) => Value::Object(map),
            Some(_) => return Err(validation("parameters must be a JSON object")),
        };
        if let Some(handler) = &job_type.handler {
            handler.check_parameters(&parameters).map_err(validation)?;
        }
        let user_id = caller
            .submitter(self.user_id)?
            .unwrap_or_else(|| DEFAULT_USER.to_owned());
        check_user_id("user_id", &user_id)?;
        let now = state.store.clock().now();
        let run_at = match (self.run_at, self.delay_seconds) {
            (Some(_), Some(_)) => return Err(validation("give run_at or delay_seconds, not both")),
            (Some(text), None) => Some(parse_timestamp(&text).ok_or_else(|| {
                validation(format!("run_at '{text}' is not an RFC 3339 timestamp"))
            })?),
            (None, Some(delay)) if (0.0..=MAX_DELAY_SECONDS).contains(&delay) => {
                Some(now + (delay * 1000.0) as Millis)
            }
            (None, Some(_)) => {
                return Err(validation(format!(
                    "delay_seconds must be between 0 and {MAX_DELAY_SECONDS}"
                )));
            }
            (None, None) => None,
        };
        if run_at.is_some_and(|at| at > now + (MAX_DELAY_SECONDS * 1000.0) as Millis) {
            return Err(validation("run_at is more than a year ahead"));
        }
        let max_attempts = self.max_attempts.unwrap_or(job_type.max_attempts);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(validation(format!(
                "max_attempts must be between 1 and {MAX_ATTEMPTS}"
            )));
        }
        let timeout_seconds = self
            .timeout_seconds
            .or(job_type.timeout.map(|d| d.as_secs_f64()));
        if timeout_seconds.is_some_and(|t| !(t > 0.0 && t <= MAX_TIMEOUT_SECONDS)) {
            return Err(validation(format!(
                "timeout_seconds must be above 0 and at most {MAX_TIMEOUT_SECONDS}"
            )));
        }
        // A duplicate would be counted twice by the store's waiting count
        // but released once: keep each job's first occurrence.
        let mut depends_on = self
            .depends_on
            .unwrap_or_default()
            .into_iter()
            .map(|dependency| match dependency {
                Dependency::Job(id) => Ok(id),
                Dependency::Position(at) => {
                    earlier.get(at as usize).map(|job| job.id).ok_or_else(|| {
                        validation(format!(
                            "depends_on: {at} is not the position of an earlier job of this \
                             batch (positions name jobs of the same POST /api/v1/jobs/batch)"
                        ))
                    })
                }
            })
            .collect::<Result<Vec<JobId>, ApiError>>()?;
        let mut seen = std::collections::HashSet::with_capacity(depends_on.len());
        depends_on.retain(|id| seen.insert(*id));
        if depends_on.len() > MAX_DEPENDENCIES {
            return Err(validation(format!(
                "depends_on may name at most {MAX_DEPENDENCIES} jobs"
            )));
        }
        let expires_in = self
            .expires_in_seconds
            .or(job_type.expires_in.map(|d| d.as_secs_f64()));
        if expires_in.is_some_and(|s| !(s > 0.0 && s <= MAX_DELAY_SECONDS)) {
            return Err(validation(format!(
                "expires_in_seconds must be above 0 and at most {MAX_DELAY_SECONDS}"
            )));
        }
        let concurrency_key = concurrency_key(
            self.concurrency_key,
            state
                .settings
                .job_types
                .get(&self.job_type)
                .and_then(|t| t.concurrency_key.as_deref()),
            &parameters,
        )?;
        Ok(NewJob {
            expires_in: expires_in.map(|s| (s * 1000.0).ceil() as Millis),
            id: new_job_id(),
            concurrency_key,
            depends_on,
            remote: job_type.is_remote(),
            job_type: self.job_type,
            user_id,
            parameters,
            priority: self.priority.unwrap_or(0),
            run_at,
            max_attempts,
            timeout_seconds,
            schedule: None,
        })
    }
}

/// Longest `concurrency_key`, given or resolved.
const MAX_CONCURRENCY_KEY_LEN: usize = 256;

/// The job's concurrency key: the submission's own, else the value at the
/// type's JSON pointer into the parameters (a string as it is, another
/// value as its JSON text; missing or null: no key).
fn concurrency_key(
    given: Option<String>,
    pointer: Option<&str>,
    parameters: &Value,
) -> Result<Option<String>, ApiError> {
    let key = match (given, pointer) {
        (Some(key), _) => Some(key),
        (None, Some(pointer)) => match parameters.pointer(pointer) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        },
        (None, None) => None,
    };
    if key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.chars().count() > MAX_CONCURRENCY_KEY_LEN)
    {
        return Err(validation(format!(
            "concurrency_key must be 1 to {MAX_CONCURRENCY_KEY_LEN} characters"
        )));
    }
    Ok(key)
}

/// `POST /api/v1/jobs`: 201 with the job and its `Location`.
#[utoipa::path(
    post,
    path = "/api/v1/jobs",
    tag = "jobs",
    summary = "Submit a job",
    description = "Queues a job: `pending`, or `scheduled` when `run_at`/`delay_seconds` lie ahead. \
        The body is read as JSON whatever the Content-Type.",
    params(("X-User-Id" = Option<String>, Header, description = "The caller; the job's user unless the body names one (1 to 128 visible ASCII characters; spaces inside)", min_length = 1, max_length = 128, pattern = r"^[!-~]([ -~]*[!-~])?$"),
        ("Idempotency-Key" = Option<String>, Header, description = "As the body's `idempotency_key`: a repeat with this key and the same body answers 200 with the first submission's job", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body(content = SubmitRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The job, as stored", body = JobSchema,
            headers(("Location" = String, description = "`/api/v1/jobs/status/{job_id}`"))),
        (status = 200, description = "A repeat of an idempotent submission: the job its key \
            holds, whatever its status now (`Idempotent-Replayed: true`); or a debounced \
            submission that collapsed into the waiting job of its key, now with this \
            submission's parameters and due time (`Debounced: true`)", body = JobSchema,
            headers(("Location" = String, description = "`/api/v1/jobs/status/{job_id}`"),
                ("Idempotent-Replayed" = String, description = "`true` for a repeat of an idempotent submission"),
                ("Debounced" = String, description = "`true` for a debounced submission that collapsed"))),
        (status = 400, description = "`ValidationError` or `UnknownJobTypeError`", body = ErrorBody),
        (status = 422, description = "`IdempotencyKeyMismatchError`: the key holds a job \
            submitted with another body; nothing stored", body = ErrorBody),
        (status = 413, description = "`PayloadTooLargeError`: body over `max_body_bytes`", body = ErrorBody),
        (status = 408, description = "`RequestTimeoutError`: the body did not arrive within `http_read_timeout_seconds`", body = ErrorBody),
        (status = 429, description = "`QuotaExceededError`: the user would have more than \
            `max_queued_jobs_per_user` queued jobs, nothing stored; or `RateLimitedError`: the \
            user submits faster than `submit_rate_per_user` allows on this node. `Retry-After` in \
            seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    requester: Requester,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let mut request = body.ok_or_else(|| validation("a JSON body with job_type is required"))?;
    let debounce = request.debounce.take();
    let key = idempotency_key(
        &headers,
        request.idempotency_key.as_deref(),
        &request,
        state.settings.idempotency_ttl,
    )?;
    let debounce = match debounce {
        None => None,
        Some(_) if key.is_some() => {
            return Err(validation("give debounce or an idempotency key, not both"));
        }
        Some(_) if request.run_at.is_some() || request.delay_seconds.is_some() => {
            return Err(validation(
                "debounce sets when the job runs: not with run_at or delay_seconds",
            ));
        }
        Some(_) if request.depends_on.as_ref().is_some_and(|d| !d.is_empty()) => {
            return Err(validation("debounce is not accepted with depends_on"));
        }
        Some(debounce) => Some(debounce.validate()?),
    };
    let debounce_given = debounce.is_some();
    let new = request.validate(&caller, &state)?;
    state.backpressure.submit_rate.take(&new.user_id, 1)?;
    let new = prepare(&state, new).await?;
    let submitted = match (key, debounce) {
        (Some(key), _) => state.store.submit_once(new, &key).await?,
        (None, Some(debounce)) => state.store.submit_debounced(new, &debounce).await?,
        (None, None) => Submitted::Created(state.store.submit(new).await?),
    };
    let (status, job) = match submitted {
        Submitted::Created(job) => (StatusCode::CREATED, job),
        Submitted::Existing(job) => (StatusCode::OK, job),
    };
    let debounced = status == StatusCode::OK && debounce_given;
    state.audit.record(
        &requester,
        AuditAction::JobSubmit,
        Some(job.id.to_string()),
        status.as_u16(),
    );
    let location = format!("/api/v1/jobs/status/{}", job.id);
    let mut response = (
        status,
        [(header::LOCATION, location)],
        Json(job.view(state.store.clock().now())),
    )
        .into_response();
    if status == StatusCode::OK {
        let header = if debounced {
            DEBOUNCED_HEADER
        } else {
            REPLAYED_HEADER
        };
        response
            .headers_mut()
            .insert(header, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /api/v1/jobs/status/{job_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/status/{job_id}",
    tag = "jobs",
    summary = "Read a job",
    params(JobIdParam),
    responses(
        (status = 200, description = "The job", body = JobSchema),
        (status = 400, description = "`InvalidJobIdError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
) -> Result<Json<JobView>, ApiError> {
    let job = state.store.get(id).await?;
    caller.check_sees(&job)?;
    Ok(Json(job.view(state.store.clock().now())))
}

/// Query of `GET /api/v1/jobs`. An empty filter (`status`, `user_id`,
/// `job_type`) is no filter; an empty `cursor` and unknown parameters are
/// a 400.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this status (empty: any).
    #[param(schema_with = status_or_empty)]
    pub status: Option<String>,
    /// Only this user (a user id as `SubmitRequest` accepts it).
    pub user_id: Option<String>,
    /// Only this job type.
    pub job_type: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page: a job id (a UUID).
    #[param(value_type = Option<uuid::Uuid>)]
    pub cursor: Option<String>,
    /// Big fields to add to each job, comma-separated: `parameters`,
    /// `result` or both. Without it the jobs are summaries, without them.
    #[param(
        example = "parameters,result",
        pattern = r"^\s*(parameters|result)?\s*(,\s*(parameters|result)?\s*)*$"
    )]
    pub include: Option<String>,
}

/// Which big fields a listing carries (`include=`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Include {
    /// `parameters`.
    pub parameters: bool,
    /// `result`.
    pub result: bool,
}

impl Include {
    /// Parses `include`: names separated by commas; empty adds nothing.
    pub(crate) fn parse(text: Option<&str>) -> Result<Include, ApiError> {
        let mut include = Include::default();
        for name in text.unwrap_or_default().split(',').map(str::trim) {
            match name {
                "" => {}
                "parameters" => include.parameters = true,
                "result" => include.result = true,
                other => {
                    return Err(validation(format!(
                        "include: unknown field '{other}' (expected parameters, result)"
                    )));
                }
            }
        }
        Ok(include)
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct JobPage {
    /// The jobs.
    #[schema(value_type = Vec<JobSchema>)]
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub next_cursor: Option<JobId>,
}

/// `GET /api/v1/jobs`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    summary = "List jobs, newest first",
    params(ListParams),
    responses(
        (status = 200, description = "A page of jobs: summaries, without `parameters` and `result` \
            unless `include` names them. With `include`, a page ends early once its jobs would \
            pass 16 MiB, with `next_cursor` where it stopped", body = JobPage),
        (status = 400, description = "`ValidationError`: a bad status, limit, cursor, include or unknown parameter", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<JobPage>, ApiError> {
    let status = params
        .status
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<JobStatus>())
        .transpose()
        .map_err(|e| validation(e.to_string()))?;
    let (limit, before) = page_params(params.limit, params.cursor, "a job")?;
    let user_id = params.user_id.filter(|u| !u.is_empty());
    if let Some(user) = &user_id {
        check_user_id("user_id", user)?;
    }
    let user_id = caller.listing_user(user_id)?;
    let include = Include::parse(params.include.as_deref())?;
    let query = ListQuery {
        status,
        user_id,
        job_type: params.job_type.filter(|t| !t.is_empty()),
        limit,
        before,
        with_parameters: include.parameters,
        with_result: include.result,
        max_bytes: MAX_PAGE_BYTES,
    };
    let page = state.store.list(&query).await?;
    let now = state.store.clock().now();
    let summary = |job: &Job| {
        let mut view = job.view(now);
        if !include.parameters {
            view.parameters = None;
        }
        if !include.result {
            view.result = None;
        }
        view
    };
    let jobs = page.jobs.iter().map(summary).collect();
    Ok(Json(JobPage {
        jobs,
        next_cursor: page.next_cursor,
    }))
}

/// Answer of cancel and restart.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ActionResponse {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// Its status after the action.
    #[schema(value_type = JobStatusSchema)]
    pub status: JobStatus,
    /// What happened.
    pub message: String,
    /// The whole job after the action.
    #[schema(value_type = JobSchema)]
    pub job: JobView,
}

/// `POST /api/v1/jobs/cancel/{job_id}`.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/cancel/{job_id}",
    tag = "jobs",
    summary = "Cancel a job",
    description = "Cancels a pending, scheduled or running job; a running job's handler is stopped.",
    params(JobIdParam),
    responses(
        (status = 200, description = "Cancelled", body = ActionResponse),
        (status = 400, description = "`InvalidJobIdError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 409, description = "`JobAlreadyCompletedError`: the job is completed, failed or cancelled; \
            `current_status` says which", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
    requester: Requester,
) -> Result<Json<ActionResponse>, ApiError> {
    check_owner(&state, &caller, id).await?;
    let job = state.store.cancel(id).await.map_err(|e| match e {
        StoreError::Conflict { id, current } => ApiError::AlreadyTerminal { id, current },
        other => other.into(),
    })?;
    state.audit.record(
        &requester,
        AuditAction::JobCancel,
        Some(job.id.to_string()),
        StatusCode::OK.as_u16(),
    );
    Ok(Json(ActionResponse {
        job_id: job.id,
        status: job.status,
        message: "Job cancelled successfully".into(),
        job: job.view(state.store.clock().now()),
    }))
}

/// Optional body of restart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestartRequest {
    /// Fresh parameters replacing the job's.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

/// `POST /api/v1/jobs/restart/{job_id}`.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/restart/{job_id}",
    tag = "jobs",
    summary = "Restart a failed or cancelled job",
    description = "Puts the job back to pending under the same id, its previous runs reset.",
    params(JobIdParam),
    request_body(content = Option<RestartRequest>, content_type = "application/json",
        description = "Optional: fresh parameters. An empty body or `null` is none; \
            any other JSON that is not an object is a 400"),
    responses(
        (status = 200, description = "Re-queued", body = ActionResponse),
        (status = 400, description = "`InvalidJobIdError` or `ValidationError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 409, description = "`JobNotRestartableError`: the job is neither failed nor cancelled; \
            `current_status` says what it is", body = ErrorBody),
        (status = 413, description = "`PayloadTooLargeError`", body = ErrorBody),
        (status = 408, description = "`RequestTimeoutError`: the body did not arrive within `http_read_timeout_seconds`", body = ErrorBody),
        (status = 429, description = "`QuotaExceededError`: the job's user already has \
            `max_queued_jobs_per_user` queued jobs; nothing changed. `Retry-After` in seconds",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
    requester: Requester,
    JsonBody(body): JsonBody<RestartRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    let parameters = match body.and_then(|b| b.parameters) {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(Value::Object(map)),
        Some(_) => return Err(validation("parameters must be a JSON object")),
    };
    // The job is read once, if its owner or fresh parameters need it.
    if parameters.is_some() || !caller.sees_everything() {
        let job = state.store.get(id).await?;
        caller.check_sees(&job)?;
        // Fresh parameters pass the job type's check, as at submission.
        let handler = state
            .registry
            .get(&job.job_type)
            .and_then(|job_type| job_type.handler.as_ref());
        if let (Some(handler), Some(parameters)) = (handler, &parameters) {
            handler.check_parameters(parameters).map_err(validation)?;
        }
    }
    let job = state
        .store
        .restart(id, parameters)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { id, current } => ApiError::NotRestartable { id, current },
            other => other.into(),
        })?;
    state.audit.record(
        &requester,
        AuditAction::JobRestart,
        Some(job.id.to_string()),
        StatusCode::OK.as_u16(),
    );
    Ok(Json(ActionResponse {
        job_id: job.id,
        status: job.status,
        message: "Job restarted and re-queued".into(),
        job: job.view(state.store.clock().now()),
    }))
}

/// `job` with its parameters as its type stores them (see
/// `JobHandler::prepare_parameters`: the pipeline's inline documents become
/// the job's input artifact here), just before it is stored.
pub(crate) async fn prepare(state: &AppState, mut job: NewJob) -> Result<NewJob, ApiError> {
    let handler = state
        .registry
        .get(&job.job_type)
        .and_then(|job_type| job_type.handler.as_ref());
    if let Some(handler) = handler {
        let parameters = std::mem::take(&mut job.parameters);
        job.parameters = handler
            .prepare_parameters(job.id, parameters)
            .await
            .map_err(|e| ApiError::ArtifactStoreUnavailable(format!("{e:#}")))?;
    }
    Ok(job)
}

/// Stores validated jobs all or none (`Store::submit_all`), for the calls
/// that submit several (the pipeline, a batch): N jobs take N of their
/// users' submission-rate tokens, each is prepared, then one store
/// operation stores them, so a failure (the quota's too) leaves none.
pub(crate) async fn submit_together(
    state: &AppState,
    jobs: Vec<NewJob>,
) -> Result<Vec<Job>, ApiError> {
    let mut per_user: std::collections::BTreeMap<&str, usize> = Default::default();
    for job in &jobs {
        *per_user.entry(job.user_id.as_str()).or_default() += 1;
    }
    for (user, count) in per_user {
        state.backpressure.submit_rate.take(user, count)?;
    }
    let mut prepared = Vec::with_capacity(jobs.len());
    for job in jobs {
        prepared.push(prepare(state, job).await?);
    }
    Ok(state.store.submit_all(prepared).await?)
}

/// `Ok` if the caller may act on job `id`: at once for a caller who sees
/// every job, else after reading the job (another user's job is a 404).
pub(crate) async fn check_owner(
    state: &AppState,
    caller: &Caller,
    id: JobId,
) -> Result<(), ApiError> {
    if caller.sees_everything() {
        return Ok(());
    }
    caller.check_sees(&state.store.get(id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_without_offset_are_utc() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01"), Some(1000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:01+01:00"), Some(1000));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
