//! Watching one job: long-poll and Server-Sent Events. Both wait on the
//! process's event bus, never on a store polling loop, and both end when the
//! server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::backpressure::stream_slots::StreamSlot;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, JobIdParam, JobIdPath};
use super::schema::{JobSchema, status_or_empty};
use super::sse_schema::JobStreamEvent;
use super::state::AppState;
use crate::events::JobWatch;
use crate::model::{Job, JobStatus, JobView, now_millis};

/// Longest accepted long-poll timeout, in seconds.
const MAX_POLL_SECONDS: f64 = 300.0;

/// Query of the long-poll.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PollParams {
    /// The status the client knows; answer at once if it differs
    /// (default, or empty: the job's status when the request arrives).
    #[param(schema_with = status_or_empty)]
    pub current_status: Option<String>,
    /// Seconds to wait at most, 0 to 300 (default 30). Kept as text so a
    /// bad value (an empty one too) gets our own 400.
    #[param(value_type = Option<f64>, minimum = 0.0, maximum = 300.0)]
    pub timeout: Option<String>,
}

/// `GET /api/v1/jobs/status/{job_id}/poll`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/status/{job_id}/poll",
    tag = "watch",
    summary = "Long-poll a job's status",
    description = "Answers at once if the status differs from `current_status`, else when it \
        changes or after `timeout` seconds, with the job as it is then. Without \
        `current_status`, a job that is already completed, failed or cancelled is answered at \
        once (only a restart could change it; give its status to wait for one). A job that \
        leaves the store while waited for (retention cleanup, a Redis that lost its data) is \
        answered 404 `JobNotFoundError`.",
    params(JobIdParam, PollParams),
    responses(
        (status = 200, description = "The job", body = JobSchema),
        (status = 400, description = "`InvalidJobIdError` or `ValidationError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 429, description = "`TooManyStreamsError`: `max_open_streams` or \
            `max_open_streams_per_caller` reached; `Retry-After` in seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn poll(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
    ApiQuery(params): ApiQuery<PollParams>,
    // Held until the poll answers or its client goes away.
    _slot: StreamSlot,
) -> Result<Json<JobView>, ApiError> {
    let timeout = match params.timeout.as_deref() {
        None => 30.0,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|t| (0.0..=MAX_POLL_SECONDS).contains(t))
            .ok_or_else(|| {
                ApiError::Validation(format!(
                    "timeout must be a number of seconds from 0 to {MAX_POLL_SECONDS}, got '{text}'"
                ))
            })?,
    };
    let known = params
        .current_status
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<JobStatus>())
        .transpose()
        .map_err(|e| ApiError::Validation(e.to_string()))?;

    let (mut watch, job) = state.store.watch(id).await?;
    caller.check_sees(&job)?;
    let mut job = Arc::new(job);
    let baseline = known.unwrap_or(job.status);
    // Nothing but a restart can change a finished job: unless the client
    // said it waits for one (by naming the status), answer now.
    let settled = known.is_none() && job.status.is_terminal();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
    let gone = watch.gone();
    while job.status == baseline && !settled {
        tokio::select! {
            _ = gone.cancelled() => return Err(ApiError::JobNotFound(id)),
            changed = watch.changed() => match changed {
                Some(latest) if latest.revision > job.revision => job = latest,
                Some(_) => {}
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                // Answer with the job as it is now (progress may have moved).
                job = Arc::new(state.store.get(id).await?);
                break;
            }
            _ = state.shutdown.cancelled() => break,
        }
    }
    Ok(Json(job.view(state.store.clock().now())))
}

/// `GET /api/v1/jobs/status/{job_id}/stream`: `job_update` events with the
/// job (status, progress, metrics...), ending with one `job_complete` once
/// it is completed, failed or cancelled.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/status/{job_id}/stream",
    tag = "watch",
    summary = "Follow a job (Server-Sent Events)",
    description = "Events `job_update` (the job now, then on every change) and one final \
        `job_complete` once it is completed, failed or cancelled. The first event's and \
        `job_complete`'s `data` is the whole `Job` object as JSON; every later `job_update` \
        carries only what changes: `job_id`, `status`, `progress`, `metrics` and `error`. \
        Keep-alive comments every 15 s. If the job leaves the store while followed \
        (retention cleanup, a Redis that lost its data), the stream ends with one `error` \
        event whose `data` is the `JobNotFoundError` body.",
    params(JobIdParam),
    responses(
        (status = 200, description = "An event stream (`text/event-stream; charset=utf-8`); \
            the schema is that of one event",
            content_type = "text/event-stream", body = JobStreamEvent),
        (status = 400, description = "`InvalidJobIdError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 429, description = "`TooManyStreamsError`: `max_open_streams` or \
            `max_open_streams_per_caller` reached; `Retry-After` in seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
    slot: StreamSlot,
) -> Result<impl IntoResponse, ApiError> {
    let (watch, job) = state.store.watch(id).await?;
    caller.check_sees(&job)?;
    let job = Arc::new(job);
    let stream = futures::stream::unfold(StreamState::First { job, watch, state }, next_event);
    let stream = slot.hold(stream);
    Ok(utf8_event_stream(Sse::new(stream).keep_alive(
        KeepAlive::new().interval(Duration::from_secs(15)),
    )))
}

/// An SSE response that names its charset. Without it, common clients
/// (Python `requests`) decode the stream as Latin-1 and split JSON inside
/// multi-byte characters.
pub(crate) fn utf8_event_stream(sse: impl IntoResponse) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
        sse,
    )
}

enum StreamState {
    First {
        job: Arc<Job>,
        watch: JobWatch,
        state: AppState,
    },
    Following {
        last_revision: i64,
        watch: JobWatch,
        state: AppState,
    },
    Done,
}

/// The SSE event for a job: `job_complete` with the whole job once
/// terminal, else `job_update`: the whole job if `first`, else only what
/// changes ([`crate::model::JobUpdate`]), so a job's big parameters are
/// sent once per stream, not on every progress report.
fn event_for(job: &Job, first: bool) -> Event {
    let now = now_millis();
    let (name, data) = if job.status.is_terminal() {
        ("job_complete", serde_json::to_string(&job.view(now)))
    } else if first {
        ("job_update", serde_json::to_string(&job.view(now)))
    } else {
        ("job_update", serde_json::to_string(&job.update_view(now)))
    };
    Event::default()
        .event(name)
        .data(data.unwrap_or_else(|_| "{}".into()))
}

async fn next_event(current: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    match current {
        StreamState::Done => None,
        StreamState::First { job, watch, state } => {
            // A change may have landed between the watch and the read.
            let job = match watch.latest() {
                Some(latest) if latest.revision > job.revision => latest,
                _ => job,
            };
            Some(emit(&job, true, watch, state))
        }
        StreamState::Following {
            last_revision,
            mut watch,
            state,
        } => {
            let gone = watch.gone();
            loop {
                tokio::select! {
                    changed = watch.changed() => match changed {
                        Some(job) if job.revision > last_revision => return Some(emit(&job, false, watch, state)),
                        Some(_) => {}
                        None => return None,
                    },
                    _ = gone.cancelled() => {
                        return Some((Ok(gone_event(watch.id())), StreamState::Done));
                    }
                    _ = state.shutdown.cancelled() => return None,
                }
            }
        }
    }
}

/// The last event of a stream whose job the store no longer has: `error`
/// with the `JobNotFoundError` body.
fn gone_event(id: crate::model::JobId) -> Event {
    let body = ApiError::JobNotFound(id).body();
    let data = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
    Event::default().event("error").data(data)
}

fn emit(
    job: &Job,
    first: bool,
    watch: JobWatch,
    state: AppState,
) -> (Result<Event, Infallible>, StreamState) {
    let next = if job.status.is_terminal() {
        StreamState::Done
    } else {
        StreamState::Following {
            last_revision: job.revision,
            watch,
            state,
        }
    };
    (Ok(event_for(job, first)), next)
}
