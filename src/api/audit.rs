//! Recording the audit log: handlers call [`AuditLog::record`] once a
//! mutation succeeded, with the [`Requester`] (who, from where). Entries
//! are not written one by one: they wait in a bounded per-process buffer
//! that a background task writes to the store in batches, [`LINGER`]
//! after the first of a burst, so a submission costs no store round trip
//! of its own. `GET /api/v1/audit` and shutdown write what waits first.
//!
//! What a crash can lose: the entries of the last [`LINGER`] (and of a
//! write under way), whose mutations are stored. An unreachable store
//! keeps entries waiting, retried every [`RETRY`]; past
//! [`MAX_WAITING`] the oldest are dropped and the count logged.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::audit::{Actor, AuditAction, AuditEntry, AuditIds};
use crate::store::{Store, StoreResult, error_chain};

/// How long the writer waits after the first waiting entry, so that a
/// burst's entries go in one write.
const LINGER: Duration = Duration::from_millis(100);

/// How often waiting entries are retried after a failed write.
const RETRY: Duration = Duration::from_secs(1);

/// Entries per store write at most (a short write in the SQLite writer's
/// background lane, one `ZADD` on Redis).
const MAX_PER_WRITE: usize = 256;

/// Entries waiting at most; past it the oldest are dropped (a store down
/// for long under a flood of mutations).
const MAX_WAITING: usize = 100_000;

/// Who made a request and from where, as the audit log records them
/// (read from the request by `extract`). The actor is the caller's
/// `X-User-Id` today (none without it); with tokens, the token's user, id
/// and role.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requester {
    /// Who.
    pub actor: Actor,
    /// The TCP peer (`api::listen` puts it on every request), when known.
    pub remote_addr: Option<SocketAddr>,
}

/// The process's audit recorder: the buffer and its writer. Shared by
/// every handler ([`super::AppState::audit`]).
pub struct AuditLog {
    store: Arc<dyn Store>,
    ids: AuditIds,
    waiting: Mutex<Waiting>,
    wake: Arc<Notify>,
    /// One write sequence at a time, so entries reach the store in order
    /// and a flush waits for the write under way.
    writing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Waiting {
    entries: VecDeque<AuditEntry>,
    /// Dropped since the last report, the buffer being full.
    dropped: u64,
}

impl AuditLog {
    /// A recorder on `store`, with its writer task (which ends once the
    /// recorder is dropped).
    pub fn start(store: Arc<dyn Store>) -> Arc<AuditLog> {
        let log = Arc::new(AuditLog {
            store,
            ids: AuditIds::new(),
            waiting: Mutex::default(),
            wake: Arc::new(Notify::new()),
            writing: tokio::sync::Mutex::new(()),
        });
        spawn_writer(Arc::downgrade(&log), log.wake.clone());
        log
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Every critical section leaves the state whole.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `requester` did `action` to `target`, answered with
    /// `status`, now (the store's clock). Returns at once; the entry is
    /// written within [`LINGER`] or so.
    pub(crate) fn record(
        &self,
        requester: &Requester,
        action: AuditAction,
        target: Option<String>,
        status: u16,
    ) {
        let entry = AuditEntry::new(
            &self.ids,
            self.store.clock().now(),
            requester.actor.clone(),
            action,
            target,
            requester.remote_addr.map(|peer| peer.to_string()),
            status,
        );
        self.push(vec![entry]);
    }

    /// Adds entries at the back of the buffer and wakes the writer.
    fn push(&self, entries: Vec<AuditEntry>) {
        {
            let mut waiting = self.lock();
            waiting.entries.extend(entries);
            drop_oldest_over(&mut waiting);
        }
        self.wake.notify_one();
    }

    /// Writes every waiting entry (and waits for a write under way), a
    /// batch at a time. On a failed write, its batch goes back to the
    /// front of the buffer, for the next try.
    pub async fn flush(&self) -> StoreResult<()> {
        let _writing = self.writing.lock().await;
        loop {
            let (batch, dropped) = {
                let mut waiting = self.lock();
                let count = waiting.entries.len().min(MAX_PER_WRITE);
                let batch: Vec<AuditEntry> = waiting.entries.drain(..count).collect();
                (batch, std::mem::take(&mut waiting.dropped))
            };
            if dropped > 0 {
                tracing::error!(
                    dropped,
                    "audit entries dropped: the store did not take them in time"
                );
            }
            if batch.is_empty() {
                return Ok(());
            }
            if let Err(e) = self.store.append_audit(&batch).await {
                let mut waiting = self.lock();
                for entry in batch.into_iter().rev() {
                    waiting.entries.push_front(entry);
                }
                drop_oldest_over(&mut waiting);
                return Err(e);
            }
        }
    }
}

/// Drops the oldest entries past [`MAX_WAITING`], counting them.
fn drop_oldest_over(waiting: &mut Waiting) {
    while waiting.entries.len() > MAX_WAITING {
        waiting.entries.pop_front();
        waiting.dropped += 1;
    }
}

/// The writer: after the first entry of a burst, waits [`LINGER`] and
/// writes what waits. Every [`RETRY`] it also tries again (entries left by
/// a failed write) and notices a dropped recorder.
fn spawn_writer(log: Weak<AuditLog>, wake: Arc<Notify>) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = wake.notified() => tokio::time::sleep(LINGER).await,
                _ = tokio::time::sleep(RETRY) => {}
            }
            let Some(log) = log.upgrade() else { return };
            match log.flush().await {
                Ok(()) => failing = false,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %error_chain(&e), "audit entries not written yet; retrying");
                    }
                    failing = true;
                }
            }
        }
    });
}
