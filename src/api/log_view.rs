//! What the log endpoints answer: a line, a page, a stream's last event
//! (`GET /status/{job_id}/logs`, `.../logs/stream`), with their schemas.

use serde::Serialize;
use utoipa::ToSchema;

use super::schema::JobStatusSchema;
use crate::model::{JobStatus, format_millis};
use crate::store::{LogEntry, LogStream};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = LogStream)]
pub(crate) enum LogStreamName {
    /// The handler's own log (`JobContext::log`, a remote worker's lines).
    Log,
    /// An external command's stdout, lines that are not JSON objects.
    Stdout,
    /// An external command's stderr.
    Stderr,
}

impl From<LogStream> for LogStreamName {
    fn from(stream: LogStream) -> LogStreamName {
        match stream {
            LogStream::Log => LogStreamName::Log,
            LogStream::Stdout => LogStreamName::Stdout,
            LogStream::Stderr => LogStreamName::Stderr,
        }
    }
}

/// One line of a job's log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogLineView {
    /// Its number in the job's log, from 1; never reused.
    #[schema(minimum = 1)]
    pub seq: u64,
    /// When it was stored.
    #[schema(format = DateTime)]
    pub at: String,
    /// The attempt that wrote it.
    #[schema(minimum = 0)]
    pub attempt: u32,
    /// Where it came from.
    pub stream: LogStreamName,
    /// The text (at most 16 KiB), without its line break.
    pub line: String,
}

impl From<LogEntry> for LogLineView {
    fn from(entry: LogEntry) -> LogLineView {
        LogLineView {
            seq: entry.seq,
            at: format_millis(entry.at),
            attempt: entry.attempt,
            stream: entry.stream.into(),
            line: entry.text,
        }
    }
}

/// A page of a job's log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogPageView {
    /// The job.
    pub job_id: uuid::Uuid,
    /// The job's status when the page was read: once completed, failed or
    /// cancelled, no line follows the last page (until a restart).
    #[schema(value_type = JobStatusSchema)]
    pub status: JobStatus,
    /// The lines after `after`, oldest first.
    pub lines: Vec<LogLineView>,
    /// `after` for the next page: the last line's `seq`, or this page's
    /// `after` when it is empty.
    #[schema(minimum = 0)]
    pub next: u64,
}

/// The last event of a log stream: the job is terminal and every line sent.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogEnd {
    /// The job.
    pub job_id: uuid::Uuid,
    /// Its status (completed, failed or cancelled).
    #[schema(value_type = JobStatusSchema)]
    pub status: JobStatus,
    /// The last line's `seq` (where a later read would start).
    #[schema(minimum = 0)]
    pub next: u64,
}
