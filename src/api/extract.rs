//! Extractors whose rejections come out in the API's error shape: a job id
//! path segment, query strings, JSON bodies, and the caller's identity.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::error::ApiError;
use super::state::AppState;
use crate::model::JobId;

/// The `{job_id}` path segment, which must be a UUID (400 otherwise).
pub(crate) struct JobIdPath(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::Validation(e.body_text()))?;
        raw.parse()
            .map(JobIdPath)
            .map_err(|_| ApiError::InvalidJobId(raw))
    }
}

/// The OpenAPI description of the `{job_id}` path parameter that
/// [`JobIdPath`] reads; never built.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct JobIdParam {
    /// The job's id, a UUID (anything else is a 400 `InvalidJobIdError`).
    job_id: uuid::Uuid,
}

/// A query string, with a 400 in our shape when it does not parse.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| ApiError::Validation(format!("invalid query string: {}", e.body_text())))
    }
}

/// A JSON body, whatever the Content-Type says (so `curl -d` works); an
/// empty body is `None`. Malformed JSON is a 400, an oversized body a 413.
pub(crate) struct JsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(state.settings.max_body_bytes)
            } else if timed_out(&e) {
                ApiError::RequestTimeout
            } else {
                ApiError::Validation(format!("cannot read request body: {}", e.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None));
        }
        serde_json::from_slice(&bytes)
            .map(|value| JsonBody(Some(value)))
            .map_err(|e| ApiError::Validation(format!("invalid JSON body: {e}")))
    }
}

/// True when reading the body failed because it took longer than the
/// read time-out (see `api::with_layers`).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Who is calling, from the `X-User-Id` header. Read in this one place so
/// authentication can replace it later.
pub(crate) struct Caller(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("x-user-id") {
            None => Ok(Caller(None)),
            Some(value) => value
                .to_str()
                .map(|v| Caller(Some(v.trim().to_owned())))
                .map_err(|_| ApiError::Validation("X-User-Id must be visible ASCII".into())),
        }
    }
}
