//! The single writer: one connection on its own thread that runs every write
//! of this process. SQLite allows one writer at a time anyway; owning it in
//! one place avoids `SQLITE_BUSY` between our own connections, and lets the
//! thread commit whatever writes queued up meanwhile in one transaction
//! (group commit), each in its own savepoint so one failing write does not
//! undo the others.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::{StoreError, StoreResult};

/// Writes committed together at most, so one transaction stays short.
const MAX_BATCH: usize = 256;

/// Writes waiting for the writer at most before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

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
            (Ok(()), None) => Err(StoreError::Unavailable("write was not run".into())),
            (Err(e), _) => Err(StoreError::Unavailable(e)),
        };
        // The caller may have gone away (a dropped request); nothing to do.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn WriteOp>>,
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
    /// transaction committed.
    pub(super) async fn write<T, F>(&self, work: F) -> StoreResult<T>
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
            .send(op)
            .await
            .map_err(|_| StoreError::Unavailable("sqlite writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("sqlite writer stopped".into()))?
    }
}

fn run(conn: Connection, mut receiver: mpsc::Receiver<Box<dyn WriteOp>>) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch);
        for op in batch {
            op.answer(commit.clone());
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteOp>]) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    for op in batch.iter_mut() {
        if let Err(e) = apply_in_savepoint(conn, op.as_mut()) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
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
