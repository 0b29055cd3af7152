//! Learning of writes made by other processes sharing the SQLite file.
//!
//! Every change to a job appends its id to `job_changes` (a trigger). One
//! thread per process checks `PRAGMA data_version` (it moves when any other
//! connection commits; reading it costs a look at shared memory) every
//! [`TAIL_INTERVAL`]; only then does it read the new log entries. A task
//! re-reads the jobs somebody here watches and publishes them. Waiters
//! themselves never touch the store.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use rusqlite::{Connection, named_params};
use tokio::sync::mpsc;

use super::rows::db_err;
use super::{SqliteStore, sql};
use crate::events::EventBus;
use crate::model::JobId;
use crate::store::{Store, StoreResult};

/// How often the tailer looks for other processes' commits: well under the
/// 10 ms a waiting client may take to learn of a change.
const TAIL_INTERVAL: Duration = Duration::from_millis(2);

/// Starts the tailer; it stops when the store is dropped.
pub(super) fn spawn(conn: Connection, store: Weak<SqliteStore>, bus: EventBus) {
    let (changes, mut received) = mpsc::channel::<Vec<(JobId, i64)>>(16);
    let alive = store.clone();
    let polling = std::thread::Builder::new()
        .name("jobd-sqlite-tail".into())
        .spawn(move || {
            let mut cursor = Cursor::default();
            while alive.strong_count() > 0 {
                std::thread::sleep(TAIL_INTERVAL);
                match cursor.poll(&conn) {
                    Ok(changed) if changed.is_empty() => {}
                    Ok(changed) => {
                        if changes.blocking_send(changed).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::store::error_chain(&e), "change tail failed")
                    }
                }
            }
        });
    if let Err(e) = polling {
        tracing::error!(error = %e, "cannot start the change tail; other processes' writes go unnoticed");
        return;
    }
    tokio::spawn(async move {
        while let Some(changed) = received.recv().await {
            let Some(store) = store.upgrade() else { break };
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
