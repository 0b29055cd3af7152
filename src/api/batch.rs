//! `POST /api/v1/jobs/batch`: up to [`MAX_BATCH`] submissions in one call,
//! stored all or none in one store operation (`Store::submit_all`, as the
//! pipeline's chain), answered in order. An entry may depend on an earlier
//! one by its position.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::Requester;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::JsonBody;
use super::jobs::{SubmitRequest, submit_together};
use super::schema::JobSchema;
use super::state::AppState;
use crate::model::JobView;
use crate::model::audit::AuditAction;

/// Most submissions one batch may hold.
pub(crate) const MAX_BATCH: usize = 1_000;

/// Body of the batch call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// The submissions, as `POST /api/v1/jobs` takes them (without
    /// `idempotency_key`), 1 to 1,000; `depends_on` may name an earlier
    /// entry by its position.
    #[schema(min_items = 1, max_items = 1000)]
    pub jobs: Vec<SubmitRequest>,
}

/// The stored jobs, in the batch's order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResponse {
    /// One per submission, in order.
    #[schema(value_type = Vec<JobSchema>)]
    pub jobs: Vec<JobView>,
}

/// `POST /api/v1/jobs/batch`: 201 with every job, or nothing stored.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/batch",
    tag = "jobs",
    summary = "Submit many jobs at once",
    description = "Up to 1,000 submissions, stored all or none in one store operation and \
        answered in order. A job may depend on an earlier one of the batch by its position \
        (`\"depends_on\": [0]`). A bad entry is a 400 whose message names its position \
        (`jobs[3]: ...`); nothing is stored.",
    params(("X-User-Id" = Option<String>, Header, description = "The caller; each job's user unless its entry names one (1 to 128 visible ASCII characters; spaces inside)", min_length = 1, max_length = 128, pattern = r"^[!-~]([ -~]*[!-~])?$")),
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The jobs, in order", body = BatchResponse),
        (status = 400, description = "`ValidationError`: the batch is empty or too large, or an \
            entry is bad (the message names its position)", body = ErrorBody),
        (status = 413, description = "`PayloadTooLargeError`", body = ErrorBody),
        (status = 408, description = "`RequestTimeoutError`: the body did not arrive within `http_read_timeout_seconds`", body = ErrorBody),
        (status = 429, description = "`QuotaExceededError`: the batch would take a user past \
            `max_queued_jobs_per_user`, none stored; or `RateLimitedError`: N jobs cost N of the \
            user's `submit_rate_per_user` tokens on this node. `Retry-After` in seconds",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn submit_batch(
    State(state): State<AppState>,
    caller: Caller,
    requester: Requester,
    JsonBody(body): JsonBody<BatchRequest>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let request =
        body.ok_or_else(|| ApiError::Validation("a JSON body with jobs is required".into()))?;
    if request.jobs.is_empty() || request.jobs.len() > MAX_BATCH {
        return Err(ApiError::Validation(format!(
            "a batch holds 1 to {MAX_BATCH} jobs, not {}",
            request.jobs.len()
        )));
    }
    let mut batch = Vec::with_capacity(request.jobs.len());
    for (position, entry) in request.jobs.into_iter().enumerate() {
        let at = |e: ApiError| match e.status_code() {
            StatusCode::BAD_REQUEST => ApiError::Validation(format!("jobs[{position}]: {e}")),
            _ => e,
        };
        if entry.idempotency_key.is_some() {
            return Err(at(ApiError::Validation(
                "idempotency_key is taken by POST /api/v1/jobs, not in a batch".into(),
            )));
        }
        let job = entry.validate_in(&caller, &state, &batch).map_err(at)?;
        batch.push(job);
    }
    let stored = submit_together(&state, batch).await?;
    for job in &stored {
        state.audit.record(
            &requester,
            AuditAction::BatchSubmit,
            Some(job.id.to_string()),
            StatusCode::CREATED.as_u16(),
        );
    }
    let now = state.store.clock().now();
    Ok((
        StatusCode::CREATED,
        Json(BatchResponse {
            jobs: stored.iter().map(|job| job.view(now)).collect(),
        }),
    ))
}
