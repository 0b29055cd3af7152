//! Checkpoints the write-ahead log on a thread of its own: copying logged
//! pages into the database file then stays out of the writes somebody
//! waits for (the writer's connection has automatic checkpoints off; once a
//! second it copies what little is left, so the log can start over, and
//! sets how far the log file is cut back then: [`limit_log`]).

use std::sync::Weak;
use std::time::Duration;

use rusqlite::Connection;

/// The write-ahead log is not cut back below this.
pub(super) const JOURNAL_SIZE_LIMIT: i64 = 16 << 20;

/// The most the log is cut back at once. Truncating a file costs about
/// 0.17 ms a MiB here (a 470 MiB log: 80 ms in one go), and SQLite cuts the
/// log inside a commit, holding the write lock; 32 MiB is about 5 ms.
const LOG_SHRINK_STEP: i64 = 32 << 20;

/// Bytes of the log's header and of each frame's beside its page.
const LOG_HEADER: i64 = 32;
const FRAME_HEADER: i64 = 24;

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
/// Returns the frames (pages) the log holds since it last started over.
pub(super) fn copy_log(conn: &Connection) -> Option<i64> {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1)) {
        Ok(frames) => Some(frames),
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint failed");
            None
        }
    }
}

/// The size a log of `size` bytes holding `frames` pages of `page_size`
/// is cut back to; see [`limit_log`].
fn log_limit(size: i64, frames: i64, page_size: i64) -> i64 {
    let held = LOG_HEADER + frames * (page_size + FRAME_HEADER);
    JOURNAL_SIZE_LIMIT
        .max(held)
        .max(size.saturating_sub(LOG_SHRINK_STEP))
}

/// Sets the size the write-ahead log is cut back to when it next starts
/// over (SQLite truncates it in the first commit after): at most
/// [`LOG_SHRINK_STEP`] below its size now, and never below what it held
/// since it last started over (`frames`, so a log in use is not cut only to
/// grow again) nor below [`JOURNAL_SIZE_LIMIT`]. The writer calls this each
/// time it lets the log start over (at most once a second), and the cut is
/// made by the next commit that writes pages (a job's change; on an idle
/// node a worker's heartbeat, every 10 s), so a log grown to hundreds of
/// megabytes by a burst shrinks back within a minute or two, by short cuts.
pub(super) fn limit_log(conn: &Connection, frames: i64) {
    let Some(path) = conn.path() else { return };
    let Ok(size) = std::fs::metadata(format!("{path}-wal")) else {
        return;
    };
    let limit = conn
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .and_then(|page_size| {
            let size = i64::try_from(size.len()).unwrap_or(i64::MAX);
            let limit = log_limit(size, frames, page_size);
            conn.pragma_update(None, "journal_size_limit", limit)
        });
    if let Err(e) = limit {
        tracing::warn!(error = %e, "setting the write-ahead log's size limit failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_cut_back_a_step_at_a_time_but_not_below_what_it_holds() {
        const MIB: i64 = 1 << 20;
        let frame = 4096 + FRAME_HEADER;
        // A burst left 470 MiB; the last second used 1,000 pages.
        assert_eq!(
            log_limit(470 * MIB, 1_000, 4096),
            470 * MIB - LOG_SHRINK_STEP
        );
        // A log in use: 100 MiB of it held since it last started over.
        let held = 100 * MIB / frame;
        assert_eq!(log_limit(110 * MIB, held, 4096), LOG_HEADER + held * frame);
        // Small and quiet: the floor.
        assert_eq!(log_limit(40 * MIB, 10, 4096), JOURNAL_SIZE_LIMIT);
        assert_eq!(log_limit(0, 0, 4096), JOURNAL_SIZE_LIMIT);
    }
}
