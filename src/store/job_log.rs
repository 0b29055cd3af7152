//! Per-job logs as the store keeps them: what a handler logged, and an
//! external command's stderr and non-protocol stdout, line by line. Each
//! line is numbered per job (`seq`, from 1, never reused), stamped with
//! the store's clock and the attempt that wrote it; a job's log is capped
//! in bytes (the caller's cap, `job_log_max_bytes`), oldest lines dropped,
//! and deleted with the job.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::{JobStatus, Millis};

/// Longest line kept, in bytes; a longer one is cut on a character
/// boundary.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// The handler's own log (`JobContext::log`, a remote worker's lines).
    Log,
    /// An external command's standard output, lines that are not JSON
    /// protocol objects.
    Stdout,
    /// An external command's standard error.
    Stderr,
}

impl LogStream {
    /// The name the API and the stores use.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Log => "log",
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogStream {
    type Err = String;

    fn from_str(s: &str) -> Result<LogStream, String> {
        match s {
            "log" => Ok(LogStream::Log),
            "stdout" => Ok(LogStream::Stdout),
            "stderr" => Ok(LogStream::Stderr),
            other => Err(format!("unknown log stream '{other}'")),
        }
    }
}

/// A line to append: its stream and text (at most
/// [`MAX_LOG_LINE_BYTES`], see [`LogLine::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without its line break.
    pub text: String,
}

impl LogLine {
    /// A line of `stream`, cut to [`MAX_LOG_LINE_BYTES`] on a character
    /// boundary and without a trailing line break.
    pub fn new(stream: LogStream, text: impl Into<String>) -> LogLine {
        let mut text = text.into();
        let kept = text.trim_end_matches(['\n', '\r']).len();
        text.truncate(kept);
        if text.len() > MAX_LOG_LINE_BYTES {
            let mut end = MAX_LOG_LINE_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        LogLine { stream, text }
    }
}

/// A stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its number in the job's log, from 1.
    pub seq: u64,
    /// When it was stored (the store's clock).
    pub at: Millis,
    /// The attempt that wrote it (the job's `attempts` then).
    pub attempt: u32,
    /// Where it came from.
    pub stream: LogStream,
    /// The text.
    pub text: String,
}

/// A page of a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// Lines after the position asked for, oldest first.
    pub lines: Vec<LogEntry>,
    /// Where the next read starts: the last line's `seq`, or the position
    /// asked for when there was none.
    pub next: u64,
    /// The job's status when the page was read (before its lines). Once
    /// completed, failed or cancelled, no line is written after these
    /// (until a restart): a follower that got less than a full page is
    /// done.
    pub status: JobStatus,
}

impl LogPage {
    /// True when the job was terminal as the page was read.
    pub fn terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_LOG_LINE_BYTES);
        let line = LogLine::new(LogStream::Log, text);
        assert!(line.text.len() <= MAX_LOG_LINE_BYTES);
        assert!(line.text.len() > MAX_LOG_LINE_BYTES - 2);
        assert!(line.text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_line_break_is_not_part_of_the_line() {
        assert_eq!(LogLine::new(LogStream::Stderr, "oops\r\n").text, "oops");
    }
}
