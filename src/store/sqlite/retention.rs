//! Keeping the change log short. Every write appends to `job_changes` (a
//! trigger; [`super::tail`] reads it), so the log is trimmed to its last
//! entries once a second, by a task of the store's own: it is bookkeeping
//! of this backend, not part of any store operation.

use std::sync::Weak;
use std::time::Duration;

use rusqlite::named_params;

use super::ops::execute;
use super::{SqliteStore, sql};
use crate::store::StoreResult;

/// How often the change log is trimmed.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// Change-log entries deleted per write when trimming the log.
const PRUNE_CHUNK: usize = 2_000;

/// Starts the trimmer; it stops when the store is dropped.
pub(super) fn spawn(store: Weak<SqliteStore>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TRIM_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(store) = store.upgrade() else { return };
            if let Err(e) = trim_change_log(&store).await {
                tracing::warn!(error = %crate::store::error_chain(&e), "trimming the change log failed");
            }
        }
    });
}

/// Trims the log in chunks, so that API writes never queue behind one long
/// delete.
async fn trim_change_log(store: &SqliteStore) -> StoreResult<()> {
    loop {
        let pruned = store
            .writer
            .write_background(|conn| {
                execute(
                    conn,
                    sql::PRUNE_CHANGES,
                    named_params! {":chunk": PRUNE_CHUNK as i64},
                )
            })
            .await?;
        if pruned < PRUNE_CHUNK {
            return Ok(());
        }
        // Let other processes sharing the file take the write lock.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
