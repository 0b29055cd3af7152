//! The single writer: one connection on its own thread that runs every write
//! of this process. SQLite allows one writer at a time anyway; owning it in
//! one place avoids `SQLITE_BUSY` between our own connections, and lets the
//! thread commit whatever writes queued up meanwhile in one transaction
//! (group commit), each in its own savepoint so one failing write does not
//! undo the others.
//!
//! Writes come in two lanes. A request's write (a submission, a cancel)
//! goes first and never shares a transaction with background work; the
//! workers' bookkeeping (claims, outcomes, maintenance) shares a
//! transaction only until a request arrives or [`BACKGROUND_SLICE`] is
//! over. So an API call waits for at most one background write however many
//! are queued.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::{copy_log, limit_log};
use crate::store::{StoreError, StoreResult};

/// Writes committed together at most, so one transaction stays short.
const MAX_BATCH: usize = 256;

/// Writes waiting for the writer at most before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

/// Background writes join one transaction for at most this long.
const BACKGROUND_SLICE: Duration = Duration::from_millis(1);

/// How often the writer lets the write-ahead log start over (see
/// [`run`]). Each time costs the writer a few milliseconds (the
/// last pages to copy and two fsyncs); once a second keeps that out of
/// nearly every request's way and the log at a few tens of megabytes.
const LOG_RESTART_INTERVAL: Duration = Duration::from_secs(1);

/// Which lane a write queues in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Made while an API caller waits: goes first.
    Request,
    /// Workers' and maintenance bookkeeping: may wait behind requests.
    Background,
}

/// A write as the writer thread sees it.
trait WriteOp: Send {
    /// Runs the write inside the open transaction.
    fn apply(&mut self, conn: &Connection);
    /// True when the write succeeded (so its savepoint is kept).
    fn succeeded(&self) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn answer(self: Box<Self>, commit: Result<(), String>);
}

struct Op<T, F> {
    work: Option<F>,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> WriteOp for Op<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn apply(&mut self, conn: &Connection) {
        if let Some(work) = self.work.take() {
            self.outcome = Some(work(conn));
        }
    }

    fn succeeded(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }

    fn answer(self: Box<Self>, commit: Result<(), String>) {
        let answer = match (commit, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::backend_unavailable(
                "sqlite",
                "write was not run",
            )),
            (Err(e), _) => Err(StoreError::backend_unavailable("sqlite", e)),
        };
        // The caller may have gone away (a dropped request); nothing to do.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<(Lane, Box<dyn WriteOp>)>,
}

impl Writer {
    /// Starts the writer thread on `conn`. The thread ends when the last
    /// handle is dropped.
    pub(super) fn start(conn: Connection) -> std::io::Result<Writer> {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("jobd-sqlite-writer".into())
            .spawn(move || run(conn, receiver))?;
        Ok(Writer { queue })
    }

    /// Runs `work` in a write transaction and returns its result once the
    /// transaction committed. For writes an API caller waits for.
    pub(super) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.enqueue(Lane::Request, work).await
    }

    /// Like [`Writer::write`], for background bookkeeping that may wait
    /// behind requests' writes.
    pub(super) async fn write_background<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.enqueue(Lane::Background, work).await
    }

    async fn enqueue<T, F>(&self, lane: Lane, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Box::new(Op {
            work: Some(work),
            outcome: None,
            reply,
        });
        self.queue
            .send((lane, op))
            .await
            .map_err(|_| StoreError::backend_unavailable("sqlite", "sqlite writer stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::backend_unavailable("sqlite", "sqlite writer stopped"))?
    }
}

fn run(conn: Connection, mut receiver: mpsc::Receiver<(Lane, Box<dyn WriteOp>)>) {
    let mut queued = Queued::default();
    let mut last_restart = Instant::now();
    loop {
        if queued.is_empty() {
            match receiver.blocking_recv() {
                Some((lane, op)) => queued.push(lane, op),
                None => return,
            }
        }
        queued.take_from(&mut receiver);
        let (ran, commit) = if queued.requests.is_empty() {
            // At least one write; more while no request waits and the
            // slice lasts (small writes, such as progress reports, then
            // share a commit).
            let slice_end = Instant::now() + BACKGROUND_SLICE;
            let mut first = true;
            run_transaction(&conn, || {
                if !std::mem::take(&mut first) {
                    queued.take_from(&mut receiver);
                    if !queued.requests.is_empty() || Instant::now() >= slice_end {
                        return None;
                    }
                }
                queued.background.pop_front()
            })
        } else {
            let mut taken = 0;
            run_transaction(&conn, || {
                taken += 1;
                (taken <= MAX_BATCH)
                    .then(|| queued.requests.pop_front())
                    .flatten()
            })
        };
        for op in ran {
            op.answer(commit.clone());
        }
        if last_restart.elapsed() >= LOG_RESTART_INTERVAL && queued.requests.is_empty() {
            // Between two of the writer's transactions, the rest of the log
            // can be copied, so that the next one starts the log over. The
            // checkpoint thread copies the bulk while the writer works, but
            // under a steady stream of writes it never finds the log
            // complete, and a log that never starts over grows without end
            // (gigabytes in a long drain, each new page zeroed by the file
            // system before it is written). The log file is cut back as it
            // starts over, a little each time (`limit_log`).
            if let Some(frames) = copy_log(&conn) {
                limit_log(&conn, frames);
            }
            last_restart = Instant::now();
        }
    }
}

/// The writes the writer thread has taken off the channel, per lane.
#[derive(Default)]
struct Queued {
    requests: VecDeque<Box<dyn WriteOp>>,
    background: VecDeque<Box<dyn WriteOp>>,
}

impl Queued {
    fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.background.is_empty()
    }

    fn push(&mut self, lane: Lane, op: Box<dyn WriteOp>) {
        match lane {
            Lane::Request => self.requests.push_back(op),
            Lane::Background => self.background.push_back(op),
        }
    }

    /// Takes what is waiting on the channel, up to [`QUEUE_DEPTH`] in all.
    fn take_from(&mut self, receiver: &mut mpsc::Receiver<(Lane, Box<dyn WriteOp>)>) {
        while self.requests.len() + self.background.len() < QUEUE_DEPTH
            && let Ok((lane, op)) = receiver.try_recv()
        {
            self.push(lane, op);
        }
    }
}

/// Runs the writes `next` yields in one transaction, each in a savepoint.
/// Returns them, to be answered with the transaction's fate.
fn run_transaction(
    conn: &Connection,
    mut next: impl FnMut() -> Option<Box<dyn WriteOp>>,
) -> (Vec<Box<dyn WriteOp>>, Result<(), String>) {
    let mut ran = Vec::new();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        ran.extend(std::iter::from_fn(next));
        return (ran, Err(e.to_string()));
    }
    while let Some(mut op) = next() {
        let applied = apply_in_savepoint(conn, op.as_mut());
        ran.push(op);
        if let Err(e) = applied {
            let _ = conn.execute_batch("ROLLBACK");
            return (ran, Err(e));
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    (ran, commit)
}

fn apply_in_savepoint(conn: &Connection, op: &mut dyn WriteOp) -> Result<(), String> {
    conn.execute_batch("SAVEPOINT op")
        .map_err(|e| e.to_string())?;
    op.apply(conn);
    if !op.succeeded() {
        conn.execute_batch("ROLLBACK TO op")
            .map_err(|e| e.to_string())?;
    }
    conn.execute_batch("RELEASE op").map_err(|e| e.to_string())
}
