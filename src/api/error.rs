//! The API's one error type, rendered in the seed's shape:
//! `{"error": "<Name>Error", "message": "...", "job_id"?, "current_status"?}`,
//! and the middleware that logs it.
//!
//! Rendering has no side effect: an error that has a cause for operators
//! (a store failure, an internal error) keeps it out of the message and
//! travels with the response as an extension; [`log_errors`] logs it with
//! the request it failed (axum's error-handling pattern).

use std::sync::Arc;

use axum::Json;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::schema::JobStatusSchema;

use crate::model::{JobId, JobStatus};
use crate::store::{StoreError, error_chain};

/// `Retry-After` of a 429 whose cause ends when other work does (a queued
/// job starting, a stream closing): a few seconds, a guess the server
/// cannot make better, short enough not to leave room unused for long.
pub(crate) const BACKPRESSURE_RETRY_AFTER: u64 = 5;

/// Everything a request can fail with, each variant with its status code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
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
    /// 409 `ClaimLostError`: a worker's claim on the job is gone (the job
    /// was cancelled, or recovered after its lease); its update changed
    /// nothing.
    #[error(
        "The claim on job {0} is gone (cancelled, or recovered after its lease); the update was discarded"
    )]
    ClaimLost(JobId),
    /// 413 `PayloadTooLargeError`.
    #[error("Request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// 408 `RequestTimeoutError`: the body did not arrive within the read
    /// time-out.
    #[error("The request body did not arrive in time")]
    RequestTimeout,
    /// 414 `UriTooLongError`: the request target is longer than the limit.
    #[error("The request URI is {length} bytes long; the limit is {limit} bytes")]
    UriTooLong {
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// 431 `HeadersTooLargeError`: more header fields, or a bigger head,
    /// than allowed; the message says which.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 401 `UnauthorizedError`: no token, or one that is malformed,
    /// unknown, expired or revoked — one message for all, no hint which.
    #[error("A valid bearer token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    /// 403 `ForbiddenError`: the caller may not make this request (its
    /// token's role, a browser's cross-site mutation, a `Host` this server
    /// does not answer to); the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `TokenNotFoundError`: no token with this id.
    #[error("Token {0} not found")]
    TokenNotFound(String),
    /// 404 `ScheduleNotFoundError`: no schedule of this name.
    #[error("Schedule {0} not found")]
    ScheduleNotFound(String),
    /// 409 `ScheduleExistsError`: a schedule of this name exists already.
    #[error("Schedule {0} exists already; delete it first, or choose another name")]
    ScheduleExists(String),
    /// 429 `QuotaExceededError`: the submission or restart would leave the
    /// user with more queued jobs than `max_queued_jobs_per_user`; nothing
    /// was stored.
    #[error(
        "User '{user_id}' would have more than {limit} queued (pending or scheduled) jobs; \
         nothing was stored. Retry once some of them have started or been cancelled"
    )]
    QuotaExceeded {
        /// The user.
        user_id: String,
        /// The quota.
        limit: u64,
    },
    /// 429 `RateLimitedError`: the user submitted faster than
    /// `submit_rate_per_user` allows on this node; nothing was stored.
    #[error(
        "User '{user_id}' is submitting faster than this server allows \
         ({per_second} jobs per second, {burst} at once); nothing was stored. \
         Retry after {retry_after} s"
    )]
    RateLimited {
        /// The user.
        user_id: String,
        /// The rate allowed.
        per_second: f64,
        /// The burst allowed.
        burst: u32,
        /// Whole seconds until the submission would be accepted.
        retry_after: u64,
    },
    /// 429 `TooManyStreamsError`: the process, or the caller, has as many
    /// SSE streams and long-polls open as allowed; the message says which.
    #[error("{0}; close a stream or long-poll, or retry later")]
    TooManyStreams(String),
    /// 404 `NotFoundError`: no such route.
    #[error("No route for {0}")]
    NoRoute(String),
    /// 422 `IdempotencyKeyMismatchError`: the idempotency key holds a job
    /// submitted with another body; nothing was stored.
    #[error(
        "Idempotency key {key:?} was used for a different request (job {job_id}); use a new key \
         for a new request"
    )]
    IdempotencyKeyMismatch {
        /// The key.
        key: String,
        /// The job it holds.
        job_id: JobId,
    },
    /// 404 `ArtifactNotFoundError`: the job has no artifact of this name.
    #[error("Job {job_id} has no artifact {name}")]
    ArtifactNotFound {
        /// The job.
        job_id: JobId,
        /// The name asked for.
        name: String,
    },
    /// 416 `RangeNotSatisfiableError`: the `Range` header asks for bytes
    /// the artifact does not have.
    #[error("The requested range is not satisfiable: the artifact has {size} bytes")]
    RangeNotSatisfiable {
        /// The artifact's size, for `Content-Range: bytes */SIZE`.
        size: u64,
    },
    /// 503 `ArtifactStoreUnavailableError`: the artifact store failed; the
    /// cause is logged, not shown.
    #[error("The artifact store is unavailable; try again later")]
    ArtifactStoreUnavailable(String),
    /// 405 `MethodNotAllowedError`.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// 503 `StoreUnavailableError`: the store failed; nothing was changed
    /// that the caller was told of. The cause is logged, not shown.
    #[error("The job store is unavailable; try again later")]
    StoreUnavailable(String),
    /// 503 `StoreUnavailableError` from `/health`: the store answers reads
    /// but refuses writes (a full disk, a Redis out of memory). The cause
    /// is logged, not shown.
    #[error(
        "The job store refuses writes (submissions, cancels and results fail); try again later"
    )]
    StoreWritesFailing(String),
    /// 500 `InternalError`: a bug, never the client's doing (a handler
    /// panicked, the store answered what the operation cannot produce).
    /// The cause is logged, not shown.
    #[error("Internal error; the request was not completed")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub(crate) fn status_code(&self) -> StatusCode {
        match self {
            ApiError::JobNotFound(_)
            | ApiError::NoRoute(_)
            | ApiError::TokenNotFound(_)
            | ApiError::ScheduleNotFound(_)
            | ApiError::ArtifactNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::IdempotencyKeyMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::InvalidJobId(_)
            | ApiError::Validation(_)
            | ApiError::UnknownJobType { .. } => StatusCode::BAD_REQUEST,
            ApiError::AlreadyTerminal { .. }
            | ApiError::NotRestartable { .. }
            | ApiError::ClaimLost(_)
            | ApiError::ScheduleExists(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::QuotaExceeded { .. }
            | ApiError::RateLimited { .. }
            | ApiError::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::StoreUnavailable(_)
            | ApiError::StoreWritesFailing(_)
            | ApiError::ArtifactStoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The seed's `error` name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ApiError::JobNotFound(_) => "JobNotFoundError",
            ApiError::InvalidJobId(_) => "InvalidJobIdError",
            ApiError::Validation(_) => "ValidationError",
            ApiError::UnknownJobType { .. } => "UnknownJobTypeError",
            ApiError::AlreadyTerminal { .. } => "JobAlreadyCompletedError",
            ApiError::NotRestartable { .. } => "JobNotRestartableError",
            ApiError::ClaimLost(_) => "ClaimLostError",
            ApiError::PayloadTooLarge(_) => "PayloadTooLargeError",
            ApiError::RequestTimeout => "RequestTimeoutError",
            ApiError::UriTooLong { .. } => "UriTooLongError",
            ApiError::HeadersTooLarge(_) => "HeadersTooLargeError",
            ApiError::NoRoute(_) => "NotFoundError",
            ApiError::Unauthorized => "UnauthorizedError",
            ApiError::Forbidden(_) => "ForbiddenError",
            ApiError::TokenNotFound(_) => "TokenNotFoundError",
            ApiError::ScheduleNotFound(_) => "ScheduleNotFoundError",
            ApiError::ScheduleExists(_) => "ScheduleExistsError",
            ApiError::MethodNotAllowed => "MethodNotAllowedError",
            ApiError::ArtifactNotFound { .. } => "ArtifactNotFoundError",
            ApiError::IdempotencyKeyMismatch { .. } => "IdempotencyKeyMismatchError",
            ApiError::RangeNotSatisfiable { .. } => "RangeNotSatisfiableError",
            ApiError::ArtifactStoreUnavailable(_) => "ArtifactStoreUnavailableError",
            ApiError::QuotaExceeded { .. } => "QuotaExceededError",
            ApiError::RateLimited { .. } => "RateLimitedError",
            ApiError::TooManyStreams(_) => "TooManyStreamsError",
            ApiError::StoreUnavailable(_) | ApiError::StoreWritesFailing(_) => {
                "StoreUnavailableError"
            }
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// What operators need to know and clients must not see: the store's
    /// or the bug's own words.
    pub(crate) fn cause(&self) -> Option<&str> {
        match self {
            ApiError::StoreUnavailable(cause)
            | ApiError::StoreWritesFailing(cause)
            | ApiError::ArtifactStoreUnavailable(cause)
            | ApiError::Internal(cause) => Some(cause),
            _ => None,
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`),
    /// for the 429s. A quota or stream slot frees when other work ends,
    /// which the server cannot foresee: [`BACKPRESSURE_RETRY_AFTER`] then.
    /// The rate limit knows when its bucket will hold enough.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::QuotaExceeded { .. } | ApiError::TooManyStreams(_) => {
                Some(BACKPRESSURE_RETRY_AFTER)
            }
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Renders `body` with this error's status, the error itself attached
    /// for [`log_errors`].
    pub(crate) fn respond_with(self, body: impl IntoResponse) -> Response {
        let mut response = (self.status_code(), body).into_response();
        if let ApiError::RangeNotSatisfiable { size } = self
            && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(Arc::new(self));
        response
    }

    fn job_id(&self) -> Option<JobId> {
        match self {
            ApiError::JobNotFound(id)
            | ApiError::ClaimLost(id)
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
pub(crate) struct ErrorBody {
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

impl ApiError {
    /// The error's body, as answered (also an SSE stream's `error` event).
    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.name().to_owned(),
            message: self.to_string(),
            job_id: self.job_id(),
            current_status: self.current_status(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        if matches!(self, ApiError::Unauthorized) {
            let challenge = [(axum::http::header::WWW_AUTHENTICATE, "Bearer")];
            return self.respond_with((challenge, Json(body)));
        }
        self.respond_with(Json(body))
    }
}

impl From<StoreError> for ApiError {
    /// The store's errors as the API reports them when the operation has no
    /// meaning of its own for them (cancel and restart map their conflicts
    /// to [`ApiError::AlreadyTerminal`] and [`ApiError::NotRestartable`]).
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound(id) => ApiError::JobNotFound(*id),
            StoreError::UnknownDependency(id) => {
                ApiError::Validation(format!("depends_on: job {id} not found"))
            }
            StoreError::QuotaExceeded { user_id, limit } => ApiError::QuotaExceeded {
                user_id: user_id.clone(),
                limit: *limit,
            },
            StoreError::Unavailable { .. } => ApiError::StoreUnavailable(error_chain(&e)),
            // Retrying cannot cure data the store cannot decode.
            StoreError::Corrupt { .. } => ApiError::Internal(error_chain(&e)),
            // The operations that can meet a conflict map it themselves:
            // any other is a bug, not the job's absence nor "cannot cancel".
            StoreError::Conflict { id, current } => {
                ApiError::Internal(format!("unexpected conflict: job {id} is {current}"))
            }
            // Only the worker protocol's calls quote claims.
            StoreError::ClaimLost(id) => ApiError::ClaimLost(*id),
            StoreError::IdempotencyMismatch { key, job_id } => ApiError::IdempotencyKeyMismatch {
                key: key.clone(),
                job_id: *job_id,
            },
        }
    }
}

/// Middleware: logs every error response with its request, from the
/// [`ApiError`] that [`IntoResponse`] attached: internal errors as errors,
/// store outages as warnings (each request meets one), client errors at
/// debug level. A failed request's cause is logged here and nowhere else.
pub(crate) async fn log_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let Some(error) = response.extensions().get::<Arc<ApiError>>() else {
        return response;
    };
    let status = response.status().as_u16();
    let name = error.name();
    let cause = error.cause().unwrap_or_default();
    let route = route.as_deref().unwrap_or("unmatched");
    match error.status_code() {
        StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::error!(%method, path, route, status, error = name, cause, "request failed");
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            tracing::warn!(%method, path, route, status, error = name, cause, "request failed");
        }
        _ => {
            tracing::debug!(%method, path, route, status, error = name, message = %error, "request refused")
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, ErrorBody) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("error body"))
    }

    #[test]
    fn a_lost_claim_is_a_conflict_not_a_missing_job() {
        let error = ApiError::from(StoreError::ClaimLost(uuid::Uuid::now_v7()));
        assert_eq!(
            (error.status_code(), error.name()),
            (StatusCode::CONFLICT, "ClaimLostError")
        );
    }

    #[test]
    fn a_conflict_no_operation_expects_is_an_internal_error() {
        // Cancel and restart map their conflicts themselves; any other
        // conflict is not "cannot cancel".
        let error = ApiError::from(StoreError::Conflict {
            id: uuid::Uuid::now_v7(),
            current: JobStatus::Running,
        });
        assert_eq!(
            (error.status_code(), error.name()),
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        );
        assert!(!error.to_string().contains("cancel"), "{error}");
    }

    #[test]
    fn the_error_rides_on_its_response_for_the_log() {
        let response = ApiError::StoreUnavailable("disk on fire".into()).into_response();
        let attached = response
            .extensions()
            .get::<Arc<ApiError>>()
            .expect("the error as an extension");
        assert_eq!(attached.cause(), Some("disk on fire"));
    }

    #[tokio::test]
    async fn internal_causes_are_not_shown_to_clients() {
        let cause = "disk on fire at /var/lib/jobd";
        for error in [
            ApiError::from(StoreError::unavailable("get", cause)),
            ApiError::from(StoreError::corrupt("get", cause)),
        ] {
            let (status, body) = body_of(error).await;
            assert!(status.is_server_error());
            assert!(!body.message.contains("disk"), "{status}: {}", body.message);
        }
    }
}
