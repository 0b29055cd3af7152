//! Learning of writes made by other processes sharing the SQLite file.
//!
//! Every change to a job appends its id to `job_changes` (a trigger). One
//! task per process checks `PRAGMA data_version` (it moves when any other
//! connection commits) every [`TAIL_INTERVAL`]; only then does it read the
//! new log entries, re-read the jobs somebody here watches, and publish them.
//! Waiters themselves never touch the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::{Connection, named_params};

use super::rows::db_err;
use super::{SqliteStore, sql};
use crate::events::EventBus;
use crate::model::JobId;
use crate::store::{Store, StoreResult};

/// How often the tailer looks for other processes' commits.
const TAIL_INTERVAL: Duration = Duration::from_millis(20);

/// Starts the tailer; it stops when the store is dropped.
pub(super) fn spawn(conn: Connection, store: Weak<SqliteStore>, bus: EventBus) {
    let conn = Arc::new(Mutex::new(conn));
    tokio::spawn(async move {
        let mut cursor = Cursor::default();
        let mut ticker = tokio::time::interval(TAIL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(store) = store.upgrade() else { break };
            let conn = conn.clone();
            let polled = tokio::task::spawn_blocking(move || {
                let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                cursor.poll(&conn).map(|changed| (cursor, changed))
            })
            .await;
            let changed = match polled {
                Ok(Ok((next, changed))) => {
                    cursor = next;
                    changed
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "change tail failed");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change tail task failed");
                    continue;
                }
            };
            if changed.is_empty() {
                continue;
            }
            bus.notify_work();
            // Re-read only jobs somebody here watches and has not seen at
            // that revision yet (this process's own writes it has).
            for (id, revision) in changed {
                let unseen = bus.revision_of(id).is_none_or(|seen| seen < revision);
                if bus.is_watched(id)
                    && unseen
                    && let Ok(job) = store.get(id).await
                {
                    bus.deliver(&job);
                }
            }
        }
    });
}

/// Where the tailer is in the change log.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    data_version: Option<i64>,
    seq: Option<i64>,
}

impl Cursor {
    /// Returns the jobs changed since the last poll, each once with its
    /// latest revision.
    fn poll(&mut self, conn: &Connection) -> StoreResult<Vec<(JobId, i64)>> {
        let version: i64 = conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(db_err)?;
        if self.data_version == Some(version) {
            return Ok(Vec::new());
        }
        self.data_version = Some(version);
        let Some(after) = self.seq else {
            // First poll: start at the end of the log.
            let last = conn
                .query_row(sql::LAST_CHANGE, [], |row| row.get(0))
                .map_err(db_err)?;
            self.seq = Some(last);
            return Ok(Vec::new());
        };
        let rows: Vec<(i64, String, i64)> = conn
            .prepare_cached(sql::CHANGES_SINCE)
            .and_then(|mut stmt| {
                stmt.query_map(named_params! {":after": after}, |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
            })
            .map_err(db_err)?;
        if let Some((last, _, _)) = rows.last() {
            self.seq = Some(*last);
            // A full page means more may be waiting: look again next tick.
            if rows.len() >= 5000 {
                self.data_version = None;
            }
        }
        let mut latest: HashMap<JobId, i64> = HashMap::new();
        for (_, id, revision) in rows {
            if let Ok(id) = id.parse() {
                let seen = latest.entry(id).or_insert(revision);
                *seen = (*seen).max(revision);
            }
        }
        Ok(latest.into_iter().collect())
    }
}
