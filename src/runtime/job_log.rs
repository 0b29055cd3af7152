//! A running job's log on its way to the store: the handler (or an
//! external command's output readers) pushes lines into a [`LogBuffer`],
//! and [`flush_logs`], polled beside the handler by the executor, writes
//! them in batches under the job's claim. A job that logs nothing costs
//! no store call; one that logs a lot costs one write per
//! [`LINGER`] at most, and its buffer holds [`MAX_BUFFERED_BYTES`] at
//! most (the oldest unwritten lines are dropped first, and a line says
//! how many).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{ClaimRef, LogLine, LogStream, Store, StoreError, error_chain};

/// How long the flusher waits after the first unwritten line, so that the
/// lines of a burst go in one write.
const LINGER: Duration = Duration::from_millis(100);

/// Unwritten bytes a job's buffer holds at most.
const MAX_BUFFERED_BYTES: usize = 1024 * 1024;

/// Lines per store write at most (a remote worker's call is capped alike).
pub(crate) const MAX_LINES_PER_WRITE: usize = 1_000;

/// Lines a running job logged that are not written yet. Shared by the
/// job's context, its output readers and its flusher.
#[derive(Default)]
pub struct LogBuffer {
    state: Mutex<Buffered>,
    wake: Notify,
    /// Fired by [`LogBuffer::close`]: a lingering flusher writes at once.
    closed: CancellationToken,
}

#[derive(Default)]
struct Buffered {
    lines: VecDeque<LogLine>,
    bytes: usize,
    /// Lines dropped since the last write, the buffer being full.
    dropped: u64,
    /// The handler is done: write what is left and stop.
    closed: bool,
}

impl LogBuffer {
    /// An empty buffer.
    pub fn new() -> Arc<LogBuffer> {
        Arc::new(LogBuffer::default())
    }

    /// Adds a line (cut to the longest line kept); drops the oldest
    /// unwritten lines while the buffer is over its bound.
    pub fn push(&self, stream: LogStream, text: impl Into<String>) {
        let line = LogLine::new(stream, text);
        {
            let mut state = self.lock();
            state.bytes += line.text.len();
            state.lines.push_back(line);
            while state.bytes > MAX_BUFFERED_BYTES && state.lines.len() > 1 {
                if let Some(old) = state.lines.pop_front() {
                    state.bytes -= old.text.len();
                    state.dropped += 1;
                }
            }
        }
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffered> {
        // Every critical section leaves the state whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the job's handler done: the flusher writes what is left, then
    /// returns.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.closed.cancel();
        self.wake.notify_one();
    }

    /// The next batch to write, oldest first, led by a note of the lines
    /// dropped before it, if any; and whether the buffer is closed.
    fn take_batch(&self) -> (Vec<LogLine>, bool) {
        let mut state = self.lock();
        let mut batch = Vec::new();
        if state.dropped > 0 {
            batch.push(LogLine::new(
                LogStream::Log,
                format!(
                    "[jobd] {} line(s) dropped here: the job logged faster than they could be stored",
                    state.dropped
                ),
            ));
            state.dropped = 0;
        }
        let Buffered {
            lines,
            bytes,
            closed,
            ..
        } = &mut *state;
        let count = lines.len().min(MAX_LINES_PER_WRITE - batch.len());
        for line in lines.drain(..count) {
            *bytes -= line.text.len();
            batch.push(line);
        }
        (batch, *closed)
    }
}

/// Writes `buffer`'s lines to the log of the job `claim` holds, a batch
/// at a time, until the buffer is closed and empty. A lost claim stops it
/// and fires `lost`; a failed write is logged and its lines dropped (the
/// job goes on: its log is not worth failing it for).
pub(crate) async fn flush_logs(
    store: Arc<dyn Store>,
    claim: ClaimRef,
    buffer: Arc<LogBuffer>,
    max_bytes: usize,
    lost: CancellationToken,
) {
    loop {
        buffer.wake.notified().await;
        // More lines of the same burst join this write; the attempt's end
        // does not wait for the linger.
        tokio::select! {
            _ = tokio::time::sleep(LINGER) => {}
            _ = buffer.closed.cancelled() => {}
        }
        loop {
            let (batch, closed) = buffer.take_batch();
            if batch.is_empty() {
                if closed {
                    return;
                }
                break;
            }
            match store.append_log(claim, &batch, max_bytes).await {
                Ok(()) => {}
                Err(StoreError::ClaimLost(_)) => {
                    lost.cancel();
                    return;
                }
                Err(e) => {
                    tracing::warn!(job_id = %claim.job_id, lines = batch.len(), error = %error_chain(&e), "job log lines not recorded")
                }
            }
        }
    }
}
