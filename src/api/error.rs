//! The API's one error type, rendered in the seed's shape:
//! `{"error": "<Name>Error", "message": "...", "job_id"?, "current_status"?}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::schema::JobStatusSchema;

use crate::model::{JobId, JobStatus};
use crate::store::StoreError;

/// Everything a request can fail with, each variant with its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 `JobNotFoundError`.
    #[error("Job {0} not found")]
    JobNotFound(JobId),
    /// 400 `InvalidJobIdError`: the path's job id is not a UUID.
    #[error("'{0}' is not a valid job id (expected a UUID)")]
    InvalidJobId(String),
    /// 400 `ValidationError`: a malformed body, query or parameter.
    #[error("{0}")]
    Validation(String),
    /// 400 `UnknownJobTypeError`, listing the known types.
    #[error("Unknown job_type '{given}'; known job types: {known}")]
    UnknownJobType {
        /// The type asked for.
        given: String,
        /// The known types, comma-separated.
        known: String,
    },
    /// 409 `JobAlreadyCompletedError`: cancel of a terminal job.
    #[error("Cannot cancel job that is already {current}")]
    AlreadyTerminal {
        /// The job.
        id: JobId,
        /// Its status.
        current: JobStatus,
    },
    /// 409 `JobNotRestartableError`: restart of a job that neither failed
    /// nor was cancelled.
    #[error("Cannot restart job that is {current}; only failed or cancelled jobs restart")]
    NotRestartable {
        /// The job.
        id: JobId,
        /// Its status.
        current: JobStatus,
    },
    /// 413 `PayloadTooLargeError`.
    #[error("Request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// 404 `NotFoundError`: no such route.
    #[error("No route for {0}")]
    NoRoute(String),
    /// 405 `MethodNotAllowedError`.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// 503 `StoreUnavailableError`: the store failed; nothing was changed
    /// that the caller was told of.
    #[error("The job store is unavailable: {0}")]
    StoreUnavailable(String),
    /// 500 `InternalError`: a handler panicked. Never expected; the panic
    /// catcher answers with it instead of dropping the connection.
    #[error("Internal error; the request was not completed")]
    Internal,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::JobNotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::InvalidJobId(_)
            | ApiError::Validation(_)
            | ApiError::UnknownJobType { .. } => StatusCode::BAD_REQUEST,
            ApiError::AlreadyTerminal { .. } | ApiError::NotRestartable { .. } => {
                StatusCode::CONFLICT
            }
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The seed's `error` name.
    pub fn name(&self) -> &'static str {
        match self {
            ApiError::JobNotFound(_) => "JobNotFoundError",
            ApiError::InvalidJobId(_) => "InvalidJobIdError",
            ApiError::Validation(_) => "ValidationError",
            ApiError::UnknownJobType { .. } => "UnknownJobTypeError",
            ApiError::AlreadyTerminal { .. } => "JobAlreadyCompletedError",
            ApiError::NotRestartable { .. } => "JobNotRestartableError",
            ApiError::PayloadTooLarge(_) => "PayloadTooLargeError",
            ApiError::NoRoute(_) => "NotFoundError",
            ApiError::MethodNotAllowed => "MethodNotAllowedError",
            ApiError::StoreUnavailable(_) => "StoreUnavailableError",
            ApiError::Internal => "InternalError",
        }
    }

    fn job_id(&self) -> Option<JobId> {
        match self {
            ApiError::JobNotFound(id)
            | ApiError::AlreadyTerminal { id, .. }
            | ApiError::NotRestartable { id, .. } => Some(*id),
            _ => None,
        }
    }

    fn current_status(&self) -> Option<JobStatus> {
        match self {
            ApiError::AlreadyTerminal { current, .. }
            | ApiError::NotRestartable { current, .. } => Some(*current),
            _ => None,
        }
    }
}

/// The error body: every error of the API has this shape.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// The error's name, e.g. `JobNotFoundError`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
    /// The job concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub job_id: Option<JobId>,
    /// The job's status, for conflicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<JobStatusSchema>)]
    pub current_status: Option<JobStatus>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::StoreUnavailable(cause) = &self {
            tracing::error!(%cause, "store unavailable");
        }
        let body = ErrorBody {
            error: self.name().to_owned(),
            message: self.to_string(),
            job_id: self.job_id(),
            current_status: self.current_status(),
        };
        (self.status_code(), Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(id) => ApiError::JobNotFound(id),
            // Operations map Conflict to their own variant; a bare one is
            // the cancel case, the only other conditional API write.
            StoreError::Conflict { id, current } => ApiError::AlreadyTerminal { id, current },
            StoreError::ClaimLost(id) => ApiError::JobNotFound(id),
            StoreError::UnknownDependency(id) => {
                ApiError::Validation(format!("depends_on: job {id} not found"))
            }
            StoreError::Unavailable(cause) => ApiError::StoreUnavailable(cause),
        }
    }
}
