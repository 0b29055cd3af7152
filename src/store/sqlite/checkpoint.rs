//! Checkpoints the write-ahead log on a thread of its own: copying logged
//! pages into the database file then stays out of the writes somebody
//! waits for (the writer's connection has automatic checkpoints off; once a
//! second it copies what little is left, so the log can start over).

use std::sync::Weak;
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is copied into the file. Often, so that little is left
/// to copy when the writer lets the log start over (`writer::run`).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);

/// Starts the checkpointer; it stops when `owner` (the store) is dropped.
pub(super) fn spawn<T: Send + Sync + 'static>(
    conn: Connection,
    owner: Weak<T>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("jobd-sqlite-checkpoint".into())
        .spawn(move || {
            while owner.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                copy_log(&conn);
            }
        })
        .map(drop)
}

/// Copies what it can of the log into the database file. PASSIVE: without
/// waiting for readers or writers, and never calling the busy handler.
pub(super) fn copy_log(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "checkpoint failed");
    }
}
