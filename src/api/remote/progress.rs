//! `progress`: a remote worker reports how far a job has come, under its
//! claim.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::invalid;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::JsonBody;
use crate::api::schema::JobStatusSchema;
use crate::api::state::AppState;
use crate::model::{JobId, JobStatus, Progress};
use crate::store::{ClaimRef, StoreError};

/// Body of `progress`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProgressRequest {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// The claim's token.
    pub token: Uuid,
    /// Fraction done, 0 to 1 (kept as it was when absent).
    pub progress: Option<f64>,
    /// Items done so far.
    pub items_processed: Option<u64>,
    /// Items in all.
    pub total_items: Option<u64>,
}

/// Answer of `progress`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProgressReply {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// Its status (running).
    #[schema(value_type = JobStatusSchema)]
    pub status: JobStatus,
    /// Its progress now.
    pub progress: f64,
}

/// `POST /api/v1/workers/progress`.
#[utoipa::path(
    post,
    path = "/api/v1/workers/progress",
    tag = "workers",
    summary = "Report a running job's progress",
    description = "Records progress under the worker's claim; watchers see it at once (SSE, \
        long-poll, dashboard).",
    request_body = ProgressRequest,
    responses(
        (status = 200, description = "Recorded", body = ProgressReply),
        (status = 400, description = "`ValidationError`", body = ErrorBody),
        (status = 409, description = "`ClaimLostError`: the claim is gone (the job was \
            cancelled, recovered after its lease, or deleted); nothing was changed", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn progress(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ProgressRequest>,
) -> Result<Json<ProgressReply>, ApiError> {
    let request = body.ok_or_else(|| invalid("a JSON body with job_id and token is required"))?;
    if request.progress.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return Err(invalid("progress must be a fraction from 0 to 1"));
    }
    let claim = ClaimRef {
        job_id: request.job_id,
        token: request.token,
    };
    // Fields left out keep what the job has (read only then).
    let given = Progress {
        fraction: request.progress.unwrap_or_default(),
        items_processed: request.items_processed,
        total_items: request.total_items,
    };
    let complete = request.progress.is_some()
        && given.items_processed.is_some()
        && given.total_items.is_some();
    let update = if complete {
        given
    } else {
        let current = state.store.get(claim.job_id).await.map_err(lost)?.progress;
        Progress {
            fraction: request.progress.unwrap_or(current.fraction),
            items_processed: given.items_processed.or(current.items_processed),
            total_items: given.total_items.or(current.total_items),
        }
    };
    let job = state
        .store
        .report_progress(claim, update)
        .await
        .map_err(lost)?;
    Ok(Json(ProgressReply {
        job_id: job.id,
        status: job.status,
        progress: job.progress.fraction,
    }))
}

/// A claim on a job that no longer exists is gone too.
fn lost(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound(id) => ApiError::ClaimLost(id),
        other => other.into(),
    }
}
