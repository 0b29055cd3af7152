//! A job's log: `GET /api/v1/jobs/status/{job_id}/logs` (a page of lines
//! after a position) and `.../logs/stream` (Server-Sent Events: the lines
//! there are, then new ones as they come, until the job is terminal and
//! its log drained).
//!
//! A follower wakes when this process appends to the job's log (the
//! event bus's log feed) or the job changes; lines appended by another
//! process (a `jobd worker`, another API node's remote worker) are found
//! by a re-read every [`REREAD`] at most.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::auth::Caller;
use super::backpressure::stream_slots::StreamSlot;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, JobIdParam, JobIdPath};
use super::jobs::check_owner;
use super::log_view::{LogEnd, LogLineView, LogPageView};
use super::sse_schema::LogStreamEvent;
use super::state::AppState;
use super::watch::utf8_event_stream;
use crate::events::JobWatch;
use crate::model::{JobId, JobStatus};
use crate::store::{LogEntry, StoreError, error_chain};

/// Lines a page holds unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;

/// Lines a page holds at most.
const MAX_LIMIT: usize = 1_000;

/// Largest position accepted (2^53 - 1: exact in every JSON reader).
const MAX_POSITION: u64 = (1 << 53) - 1;

/// Lines a follower reads per store call.
const FOLLOW_PAGE: usize = 500;

/// Longest a follower goes without re-reading the store: the delay at
/// which it sees lines another process appended.
pub(crate) const REREAD: Duration = Duration::from_secs(1);

/// Query of a log page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogParams {
    /// Lines after this one (a line's `seq`, or a page's `next`); default 0,
    /// from the oldest line kept.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9007199254740991_u64)]
    pub after: Option<String>,
    /// Lines at most, 1 to 1000 (default 100).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Query of a log stream.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogStreamParams {
    /// Lines after this one (default 0: from the oldest line kept). A
    /// `Last-Event-ID` header (an event's `id`, sent by a reconnecting
    /// `EventSource`) takes its place.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9007199254740991_u64)]
    pub after: Option<String>,
}

fn position(what: &str, text: Option<&str>) -> Result<u64, ApiError> {
    match text {
        None => Ok(0),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_POSITION)
            .ok_or_else(|| {
                ApiError::Validation(format!(
                    "{what} must be a line number from 0 to {MAX_POSITION}, got '{text}'"
                ))
            }),
    }
}

fn page_limit(text: Option<&str>) -> Result<usize, ApiError> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::Validation(format!(
                    "limit must be a number from 1 to {MAX_LIMIT}, got '{text}'"
                ))
            }),
    }
}

/// `GET /api/v1/jobs/status/{job_id}/logs`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/status/{job_id}/logs",
    tag = "watch",
    summary = "A page of a job's log",
    description = "The job's log lines after `after`, oldest first: what its handler logged, \
        and an external command's stderr and stdout lines that are not JSON objects. Lines \
        are numbered per job (`seq`, never reused); a job keeps its last few MiB \
        (`job_log_max_bytes`), older lines are dropped, so the first line may be above \
        `after + 1`. Pass `next` as `after` for the next page. The log is deleted with the job.",
    params(JobIdParam, LogParams),
    responses(
        (status = 200, description = "A page of the log", body = LogPageView),
        (status = 400, description = "`InvalidJobIdError` or `ValidationError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn log_page(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
    ApiQuery(params): ApiQuery<LogParams>,
) -> Result<Json<LogPageView>, ApiError> {
    let after = position("after", params.after.as_deref())?;
    let limit = page_limit(params.limit.as_deref())?;
    check_owner(&state, &caller, id).await?;
    let page = state.store.read_log(id, after, limit).await?;
    Ok(Json(LogPageView {
        job_id: id,
        status: page.status,
        lines: page.lines.into_iter().map(LogLineView::from).collect(),
        next: page.next,
    }))
}

/// `GET /api/v1/jobs/status/{job_id}/logs/stream`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/status/{job_id}/logs/stream",
    tag = "watch",
    summary = "Follow a job's log (Server-Sent Events)",
    description = "One `log` event per line (its `id` is the line's `seq`, so a reconnecting \
        `EventSource` resumes after the last line it got), the lines after `after` first, then \
        new ones as they are stored; then one `end` event once the job is completed, failed or \
        cancelled and every line is sent. Lines written by this process arrive at once, by \
        another process (a separate worker, another API node) within about a second. \
        Keep-alive comments every 15 s. If the job leaves the store while followed, the stream \
        ends with one `error` event whose `data` is the `JobNotFoundError` body.",
    params(JobIdParam, LogStreamParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this line (instead of `after`)")),
    responses(
        (status = 200, description = "An event stream (`text/event-stream; charset=utf-8`); \
            the schema is that of one event",
            content_type = "text/event-stream", body = LogStreamEvent),
        (status = 400, description = "`InvalidJobIdError` or `ValidationError`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`", body = ErrorBody),
        (status = 429, description = "`TooManyStreamsError`: `max_open_streams` or \
            `max_open_streams_per_caller` reached; `Retry-After` in seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn log_stream(
    State(state): State<AppState>,
    caller: Caller,
    JobIdPath(id): JobIdPath,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<LogStreamParams>,
    slot: StreamSlot,
) -> Result<impl IntoResponse, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("not text"));
    // Both are checked; a reconnect's header wins over the query it repeats.
    let from_query = position("after", params.after.as_deref())?;
    let after = match resume {
        Some(text) => position("Last-Event-ID", Some(text))?,
        None => from_query,
    };
    // Listen before the first read, so no append falls between them.
    let appended = state.bus.subscribe_logs();
    let (watch, job) = state.store.watch(id).await?;
    caller.check_sees(&job)?;
    let follow = Follow {
        state,
        id,
        after,
        watch,
        appended,
        unsent: VecDeque::new(),
        done: false,
    };
    let stream = slot.hold(futures::stream::unfold(follow, next_event));
    Ok(utf8_event_stream(Sse::new(stream).keep_alive(
        KeepAlive::new().interval(Duration::from_secs(15)),
    )))
}

/// A follower of one job's log.
struct Follow {
    state: AppState,
    id: JobId,
    /// The last line read.
    after: u64,
    /// The job's changes (a status change; the job leaving the store).
    watch: JobWatch,
    /// This process's log appends.
    appended: broadcast::Receiver<JobId>,
    /// Lines read and not yet sent.
    unsent: VecDeque<LogEntry>,
    /// The last event went out.
    done: bool,
}

fn line_event(entry: LogEntry) -> Event {
    let seq = entry.seq;
    let data = serde_json::to_string(&LogLineView::from(entry)).unwrap_or_else(|_| "{}".into());
    Event::default().event("log").id(seq.to_string()).data(data)
}

fn gone_event(id: JobId) -> Event {
    let data =
        serde_json::to_string(&ApiError::JobNotFound(id).body()).unwrap_or_else(|_| "{}".into());
    Event::default().event("error").data(data)
}

async fn next_event(mut follow: Follow) -> Option<(Result<Event, Infallible>, Follow)> {
    loop {
        if let Some(entry) = follow.unsent.pop_front() {
            return Some((Ok(line_event(entry)), follow));
        }
        if follow.done {
            return None;
        }
        match follow
            .state
            .store
            .read_log(follow.id, follow.after, FOLLOW_PAGE)
            .await
        {
            Ok(page) => {
                let full = page.lines.len() == FOLLOW_PAGE;
                follow.after = page.next;
                if !page.lines.is_empty() {
                    follow.unsent.extend(page.lines);
                    continue;
                }
                if page.terminal() && !full {
                    return Some(end_event(follow, page.status));
                }
            }
            Err(StoreError::NotFound(_)) => {
                follow.done = true;
                return Some((Ok(gone_event(follow.id)), follow));
            }
            Err(e) => {
                // A store that does not answer ends nothing: try again.
                tracing::warn!(job_id = %follow.id, error = %error_chain(&e), "log follower could not read the log");
            }
        }
        if !wait_for_more(&mut follow).await {
            return if follow.done {
                Some((Ok(gone_event(follow.id)), follow))
            } else {
                None
            };
        }
    }
}

/// The `end` event, with the job's terminal status.
fn end_event(mut follow: Follow, status: JobStatus) -> (Result<Event, Infallible>, Follow) {
    follow.done = true;
    let body = LogEnd {
        job_id: follow.id,
        status,
        next: follow.after,
    };
    let data = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
    (Ok(Event::default().event("end").data(data)), follow)
}

/// Waits until the log may have grown: an append here, a change of the
/// job, or [`REREAD`]. False when the stream must end: the server shuts
/// down, or the job left the store (then `done` is set).
async fn wait_for_more(follow: &mut Follow) -> bool {
    let gone = follow.watch.gone();
    let id = follow.id;
    let appended = async {
        loop {
            match follow.appended.recv().await {
                Ok(job) if job == id => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let shutdown = follow.state.shutdown.clone();
    let vanished = tokio::select! {
        _ = appended => return true,
        _ = follow.watch.changed() => return true,
        _ = tokio::time::sleep(REREAD) => return true,
        _ = gone.cancelled() => true,
        _ = shutdown.cancelled() => false,
    };
    follow.done = vanished;
    false
}
