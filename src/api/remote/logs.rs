//! `logs`: a remote worker appends lines to a job's log (`print`s and
//! `logging` records of its handler), under its claim.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::invalid;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::JsonBody;
use crate::api::log_view::LogStreamName;
use crate::api::state::AppState;
use crate::model::JobId;
use crate::runtime::job_log::MAX_LINES_PER_WRITE;
use crate::store::{ClaimRef, LogLine, LogStream};

/// Body of `logs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsRequest {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// The claim's token.
    pub token: Uuid,
    /// The lines, oldest first (at most 1000; each cut at 16 KiB).
    #[schema(max_items = 1000)]
    pub lines: Vec<String>,
    /// Where they came from (default `log`).
    #[schema(value_type = Option<LogStreamName>)]
    pub stream: Option<LogStream>,
}

/// `POST /api/v1/workers/logs`.
#[utoipa::path(
    post,
    path = "/api/v1/workers/logs",
    tag = "workers",
    summary = "Append lines to a running job's log",
    description = "Appends the lines to the job's log under the worker's claim, numbered and \
        stamped by the store (`GET /api/v1/jobs/status/{job_id}/logs`); the log keeps the \
        job's last `job_log_max_bytes`. Send a batch of lines every so often rather than a \
        call per line.",
    request_body = LogsRequest,
    responses(
        (status = 204, description = "Appended"),
        (status = 400, description = "`ValidationError`", body = ErrorBody),
        (status = 409, description = "`ClaimLostError`: the claim is gone (the job was \
            cancelled, or recovered after its lease); nothing was written", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn append_logs(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<LogsRequest>,
) -> Result<StatusCode, ApiError> {
    let request =
        body.ok_or_else(|| invalid("a JSON body with job_id, token and lines is required"))?;
    if request.lines.len() > MAX_LINES_PER_WRITE {
        return Err(invalid(format!(
            "lines holds {} lines; send at most {MAX_LINES_PER_WRITE} a call",
            request.lines.len()
        )));
    }
    let stream = request.stream.unwrap_or(LogStream::Log);
    let lines: Vec<LogLine> = request
        .lines
        .into_iter()
        .map(|text| LogLine::new(stream, text))
        .collect();
    let claim = ClaimRef {
        job_id: request.job_id,
        token: request.token,
    };
    state
        .store
        .append_log(claim, &lines, state.settings.job_log_max_bytes)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
