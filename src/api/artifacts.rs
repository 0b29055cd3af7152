//! A job's artifacts over HTTP: `GET /api/v1/jobs/status/{job_id}/artifacts`
//! lists them, `.../artifacts/{name}` streams one from the artifact store,
//! with `Content-Length` and single byte ranges (`Range: bytes=...`, 206),
//! so a client on any machine can fetch a dataset and resume a large one.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http_range_header::RangeUnsatisfiableError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, JobIdParam, JobIdPath};
use super::state::AppState;
use crate::model::JobId;
use crate::pipeline::artifacts::{ArtifactInfo, media_type, valid_name};

/// A job's artifacts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ArtifactList {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// Its artifacts, by name; none until a step has written them (a
    /// `document_processing` job's inline documents are its `input.json`
    /// from submission on).
    pub artifacts: Vec<ArtifactListItem>,
}

/// One artifact of the list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ArtifactListItem {
    #[serde(flatten)]
    pub artifact: ArtifactInfo,
    /// Where to download it.
    pub url: String,
}

/// The path of one artifact.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ArtifactPath {
    /// The job's id, a UUID (anything else is a 400 `InvalidJobIdError`).
    job_id: String,
    /// The artifact's file name, as listed.
    name: String,
}

fn unavailable(e: object_store::Error) -> ApiError {
    ApiError::ArtifactStoreUnavailable(e.to_string())
}

/// `GET /api/v1/jobs/status/{job_id}/artifacts`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/status/{job_id}/artifacts",
    tag = "jobs",
    summary = "List a job's artifacts",
    params(JobIdParam),
    responses(
        (status = 200, description = "Name, size and media type of each", body = ArtifactList),
        (status = 400, description = "`InvalidJobIdError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError` or `ArtifactStoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn list_artifacts(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
) -> Result<Json<ArtifactList>, ApiError> {
    // Read even for a caller who sees every job: a deleted job's
    // artifacts may linger until the sweep, and are not shown.
    caller.check_sees(&state.store.get(id).await?)?;
    let artifacts = state
        .artifacts
        .list(id)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|artifact| ArtifactListItem {
            url: format!("/api/v1/jobs/status/{id}/artifacts/{}", artifact.name),
            artifact,
        })
        .collect();
    Ok(Json(ArtifactList {
        job_id: id,
        artifacts,
    }))
}

/// `GET /api/v1/jobs/status/{job_id}/artifacts/{name}`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/status/{job_id}/artifacts/{name}",
    tag = "jobs",
    summary = "Download one artifact",
    description = "The whole file (200), or one byte range (`Range: bytes=START-END`, 206 \
        with `Content-Range`); several ranges get the whole file.",
    params(ArtifactPath,
        ("Range" = Option<String>, Header, description = "One byte range, `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX`")),
    responses(
        (status = 200, description = "The artifact, typed by its extension",
            content((serde_json::Value = "application/json"), (String = "application/jsonl"),
                (String = "text/csv"), (String = "text/plain"), (String = "application/octet-stream")),
            headers(("Content-Length" = u64, description = "Its size in bytes"))),
        (status = 206, description = "The requested range (of a JSON file too: a range of bytes is not JSON)",
            content((String = "application/json"), (String = "application/jsonl"),
                (String = "text/csv"), (String = "text/plain"), (String = "application/octet-stream")),
            headers(("Content-Range" = String, description = "`bytes START-END/SIZE`"))),
        (status = 400, description = "`InvalidJobIdError` or `ValidationError` (not an artifact name)", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError` or `ArtifactNotFoundError`", body = ErrorBody),
        (status = 416, description = "`RangeNotSatisfiableError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError` or `ArtifactStoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn download_artifact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<ArtifactPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: JobId = path
        .job_id
        .parse()
        .map_err(|_| ApiError::InvalidJobId(path.job_id.clone()))?;
    let name = path.name;
    if !valid_name(&name) {
        return Err(ApiError::Validation(format!(
            "{name:?} is not an artifact name (a file name, not hidden)"
        )));
    }
    caller.check_sees(&state.store.get(id).await?)?;
    let not_found = |e: object_store::Error| match e {
        object_store::Error::NotFound { .. } => ApiError::ArtifactNotFound {
            job_id: id,
            name: name.clone(),
        },
        other => unavailable(other),
    };
    // One store request unless a range is asked for: its bounds need the
    // size first.
    let range = if headers.contains_key(header::RANGE) {
        let size = state
            .artifacts
            .head(id, &name)
            .await
            .map_err(not_found)?
            .size;
        requested_range(&headers, size)?
    } else {
        None
    };
    let got = state
        .artifacts
        .get(id, &name, range.clone())
        .await
        .map_err(not_found)?;
    let size = got.meta.size;
    let media_type = media_type(&name);
    let length = got.range.end - got.range.start;
    let body = Body::from_stream(got.into_stream().map_err(std::io::Error::other));
    let mut response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        ],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        name.replace('"', "")
    )) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    if let Some(range) = range {
        let content_range = format!("bytes {}-{}/{size}", range.start, range.end - 1);
        if let Ok(value) = HeaderValue::from_str(&content_range) {
            headers.insert(header::CONTENT_RANGE, value);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

/// The one byte range the `Range` header asks for, as a half-open range;
/// `None` for the whole file (no header, another unit, or several ranges,
/// which a server may answer in full). A range past the end is a 416.
fn requested_range(
    headers: &HeaderMap,
    size: u64,
) -> Result<Option<std::ops::Range<u64>>, ApiError> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    // A malformed header is ignored (RFC 9110 allows it); a well-formed
    // one that misses the file is a 416.
    match http_range_header::parse_range_header(value).map(|parsed| parsed.validate(size)) {
        Ok(Ok(ranges)) => Ok(match ranges.as_slice() {
            [one] => Some(*one.start()..*one.end() + 1),
            _ => None,
        }),
        Ok(Err(_)) | Err(RangeUnsatisfiableError::Unsatisfiable) => {
            Err(ApiError::RangeNotSatisfiable { size })
        }
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        requested_range(&headers, size)
    }

    #[test]
    fn one_range_is_served_and_others_are_whole_or_refused() {
        assert_eq!(range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(range("bytes=90-", 100).unwrap(), Some(90..100));
        assert_eq!(range("bytes=-5", 100).unwrap(), Some(95..100));
        assert_eq!(range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(range("items=0-1", 100).unwrap(), None);
        assert!(matches!(
            range("bytes=200-300", 100),
            Err(ApiError::RangeNotSatisfiable { size: 100 })
        ));
        assert_eq!(range("bytes=abc", 100).unwrap(), None);
    }
}
