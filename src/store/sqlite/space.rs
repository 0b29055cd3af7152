//! Giving disk space back. Deleting rows (retention, the change-log trim)
//! leaves their pages free inside the file, which SQLite reuses but never
//! returns to the file system by itself: 200,000 jobs left a 470 MiB file
//! that stayed 470 MiB, 99% free, after retention removed them all, beside
//! a 410 MB write-ahead log.
//!
//! The file is kept in `auto_vacuum = INCREMENTAL` mode (set before its
//! first table, [`super::connection::open_connection`]; a file made before
//! converts once at open, [`convert`]). After each retention pass,
//! [`give_back`] truncates the free pages off the file in small steps on
//! the writer, each a background write bounded in time, so requests' writes
//! pass between them. The write-ahead log is cut back a little each time it
//! starts over ([`super::checkpoint::limit_log`]), never in one long
//! truncation while requests wait (at open, it is truncated whole:
//! [`truncate_log_at_open`]).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::connection::open_connection;
use super::rows::db_err;
use super::writer::Writer;
use crate::config::Synchronous;
use crate::store::StoreResult;

/// Free pages left in the file for the next writes rather than given back.
const KEEP_FREE_PAGES: i64 = 1_024;

/// Pages one `incremental_vacuum` call frees. Each moves up to this many
/// pages still in use from the end of the file into free ones; a call of
/// 8 took 0.05 ms at the median here, 4–6 ms at the 99th percentile
/// (32: 0.23 and 13–15 ms), so the step's budget is kept closely.
const CHUNK_PAGES: i64 = 8;

/// How long one give-back step may run on the writer before it lets the
/// other writes through (it ends after the chunk that passes it).
const STEP_BUDGET: Duration = Duration::from_millis(2);

/// A file made before incremental vacuum converts at open (one `VACUUM`,
/// which copies the data still in use) only when that data is no more than
/// this: about a second here (189 MiB took 1.4 s). A larger one would
/// delay the start by seconds, so it is left as it is, with a warning (its
/// free pages are still reused).
const CONVERT_AT_OPEN_MAX_BYTES: i64 = 128 << 20;

/// Converts a file made before incremental vacuum (schema versions 1–4
/// made files without it) if that is quick; see
/// [`CONVERT_AT_OPEN_MAX_BYTES`]. Failing to convert is logged, not fatal:
/// the store works the same, only without giving space back.
pub(super) fn convert(conn: &Connection, path: &Path) {
    if let Err(e) = convert_within(conn, path, CONVERT_AT_OPEN_MAX_BYTES) {
        tracing::warn!(
            error = %e,
            file = %path.display(),
            "could not switch the SQLite file to incremental vacuum; space freed by retention is reused but not given back"
        );
    }
}

/// Converts the file if the data it holds is `max_bytes` at most.
fn convert_within(conn: &Connection, path: &Path, max_bytes: i64) -> rusqlite::Result<()> {
    let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |row| row.get(0))?;
    if mode == 2 {
        return Ok(());
    }
    let pages: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |row| row.get(0))?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
    let in_use = (pages - free).max(0) * page_size;
    let file_mib = (pages * page_size) >> 20;
    if in_use > max_bytes {
        tracing::warn!(
            file = %path.display(),
            file_mib,
            in_use_mib = in_use >> 20,
            "the SQLite file predates incremental vacuum and is too large to convert at start without a long delay; \
             space freed by retention is reused but not given back. To convert it, stop jobd and run \
             `sqlite3 FILE 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM;'` (it copies the data in use)"
        );
        return Ok(());
    }
    tracing::info!(
        file = %path.display(),
        file_mib,
        in_use_mib = in_use >> 20,
        "converting the SQLite file to incremental vacuum (once: a VACUUM copies the data in use)"
    );
    let started = Instant::now();
    // VACUUM builds the new file in a temporary one: on disk, not in
    // memory as the store's own temporary tables are.
    conn.pragma_update(None, "temp_store", "FILE")?;
    let vacuumed = conn
        .pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .and_then(|()| conn.execute_batch("VACUUM"));
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    vacuumed?;
    let after: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0))?;
    tracing::info!(
        file_mib = (after * page_size) >> 20,
        took_ms = started.elapsed().as_millis() as u64,
        "converted the SQLite file to incremental vacuum"
    );
    Ok(())
}

/// Truncates the file's free pages beyond [`KEEP_FREE_PAGES`], one short
/// background write at a time. Returns the bytes the file lost; logs them
/// with the steps taken and the longest step.
pub(super) async fn give_back(writer: &Writer) -> StoreResult<u64> {
    let started = Instant::now();
    let (mut bytes, mut steps, mut longest_step) = (0, 0, Duration::ZERO);
    // Each step frees at least one chunk, so this many steps free every
    // page that was free at the start; pages freed meanwhile wait for the
    // next pass.
    let mut steps_left: Option<i64> = None;
    loop {
        let step = writer.write_background(step_in).await?;
        steps += 1;
        bytes += step.freed_bytes;
        longest_step = longest_step.max(step.took);
        if step.freed_bytes == 0 {
            // Nothing above the pages kept, or a file not in incremental
            // mode (one too large to convert at open).
            break;
        }
        let left = steps_left.get_or_insert(step.free_before / CHUNK_PAGES + 1);
        *left -= 1;
        if step.free_after <= KEEP_FREE_PAGES || *left <= 0 {
            break;
        }
        // A pause as long as the step (1 ms at least), so that giving back
        // takes at most half of the writer's time, and the log pages it
        // writes reach the checkpoint at no more than half the pace; other
        // processes sharing the file take the write lock meanwhile.
        tokio::time::sleep(step.took.max(Duration::from_millis(1))).await;
    }
    if bytes > 0 {
        tracing::info!(
            bytes,
            steps,
            longest_step_us = longest_step.as_micros() as u64,
            took_ms = started.elapsed().as_millis() as u64,
            "gave disk space back"
        );
    }
    Ok(bytes)
}

/// What one give-back step did.
struct Step {
    free_before: i64,
    free_after: i64,
    freed_bytes: u64,
    took: Duration,
}

/// One give-back step, inside the writer's transaction: chunks of
/// [`CHUNK_PAGES`] until [`STEP_BUDGET`] is spent or only
/// [`KEEP_FREE_PAGES`] are left free.
fn step_in(conn: &Connection) -> StoreResult<Step> {
    let started = Instant::now();
    let pragma = |name: &str| -> StoreResult<i64> {
        conn.pragma_query_value(None, name, |row| row.get(0))
            .map_err(db_err)
    };
    let pages_before = pragma("page_count")?;
    let free_before = pragma("freelist_count")?;
    let mut free_after = free_before;
    // At least one chunk, however long the thread waited to get here.
    while free_after > KEEP_FREE_PAGES
        && (free_after == free_before || started.elapsed() < STEP_BUDGET)
    {
        let chunk = CHUNK_PAGES.min(free_after - KEEP_FREE_PAGES);
        conn.execute_batch(&format!("PRAGMA incremental_vacuum({chunk})"))
            .map_err(db_err)?;
        let now_free = pragma("freelist_count")?;
        if now_free >= free_after {
            // Not in incremental mode: nothing to give back.
            break;
        }
        free_after = now_free;
    }
    // The file shrinks by the free pages and by the pointer-map pages
    // (incremental mode's bookkeeping) that covered them.
    let pages_freed = (pages_before - pragma("page_count")?).max(0);
    Ok(Step {
        free_before,
        free_after,
        freed_bytes: (pages_freed * pragma("page_size")?) as u64,
        took: started.elapsed(),
    })
}

/// Truncates the write-ahead log at open, while no request waits: a log
/// left large by the previous run (a burst, a file converted at open) is
/// otherwise cut back only as writes come, and an idle API node may write
/// nothing. It copies what is left of the log into the file first. On a
/// connection of its own that never waits: when another process is
/// writing or reading the log, it gives way, and
/// [`super::checkpoint::limit_log`] cuts the log back later.
pub(super) fn truncate_log_at_open(path: &Path) {
    let truncated = open_connection(path, Synchronous::Normal).and_then(|mut conn| {
        conn.busy_handler(None::<fn(i32) -> bool>)?;
        // (busy, frames, frames copied): busy is 1 when it gave way.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        })
    });
    match truncated {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy => {}
        Err(e) => tracing::warn!(error = %e, "truncating the write-ahead log at open failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::connection::migrate;
    use super::*;

    /// Jobs enough for their pages to be well above [`KEEP_FREE_PAGES`].
    const JOBS: usize = 4_000;

    /// A file as jobd made it before incremental vacuum, with [`JOBS`] jobs.
    fn old_file(path: &Path) {
        let mut conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        migrate(&mut conn).unwrap();
        let parameters = format!("{{\"filler\":\"{}\"}}", "x".repeat(4_000));
        let tx = conn.transaction().unwrap();
        for i in 0..JOBS {
            tx.execute(
                "INSERT INTO jobs (id, job_type, user_id, status, parameters, created_at, queued_at, updated_at)
                 VALUES (?1, 'noop', 'u', 'pending', ?2, 1, 1, 1)",
                (i.to_string(), &parameters),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    fn pragma(conn: &Connection, name: &str) -> i64 {
        conn.pragma_query_value(None, name, |row| row.get(0))
            .unwrap()
    }

    fn jobs(conn: &Connection) -> usize {
        conn.query_row("SELECT count(*) FROM jobs", [], |row| row.get::<_, i64>(0))
            .unwrap() as usize
    }

    /// Runs give-back steps until one frees nothing; returns the free
    /// pages they gave back and the bytes the file lost.
    fn give_back_all(conn: &Connection) -> (i64, i64) {
        let (mut pages, mut bytes) = (0, 0);
        for _ in 0..100_000 {
            let step = step_in(conn).unwrap();
            if step.freed_bytes == 0 {
                return (pages, bytes);
            }
            assert!(step.free_after < step.free_before);
            pages += step.free_before - step.free_after;
            bytes += step.freed_bytes as i64;
        }
        panic!("give-back steps never ended");
    }

    #[test]
    fn a_new_file_is_made_in_incremental_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn =
            open_connection(&dir.path().join("jobd.sqlite3"), Synchronous::Normal).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(pragma(&conn, "auto_vacuum"), 2, "INCREMENTAL");
        assert_eq!(
            pragma(&conn, "journal_size_limit"),
            super::super::checkpoint::JOURNAL_SIZE_LIMIT
        );
    }

    #[test]
    fn an_old_file_converts_at_open_keeps_its_jobs_and_gives_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.sqlite3");
        old_file(&path);
        let conn = open_connection(&path, Synchronous::Normal).unwrap();
        assert_eq!(pragma(&conn, "auto_vacuum"), 0, "opening converts nothing");
        convert(&conn, &path);
        assert_eq!(pragma(&conn, "auto_vacuum"), 2, "INCREMENTAL");
        assert_eq!(jobs(&conn), JOBS);

        conn.execute("DELETE FROM jobs", []).unwrap();
        let (pages, free) = (pragma(&conn, "page_count"), pragma(&conn, "freelist_count"));
        assert!(free > 2 * KEEP_FREE_PAGES, "{free} pages free");
        let (freed, bytes) = give_back_all(&conn);
        assert_eq!(freed, free - KEEP_FREE_PAGES);
        assert_eq!(pragma(&conn, "freelist_count"), KEEP_FREE_PAGES);
        let page_size = pragma(&conn, "page_size");
        assert_eq!(pragma(&conn, "page_count"), pages - bytes / page_size);
        assert!(bytes >= freed * page_size, "and pointer-map pages");
    }

    #[test]
    fn an_old_file_too_large_to_convert_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.sqlite3");
        old_file(&path);
        let conn = open_connection(&path, Synchronous::Normal).unwrap();
        convert_within(&conn, &path, 0).unwrap();
        assert_eq!(pragma(&conn, "auto_vacuum"), 0, "NONE");
        assert_eq!(jobs(&conn), JOBS);
        conn.execute("DELETE FROM jobs", []).unwrap();
        assert!(pragma(&conn, "freelist_count") > 2 * KEEP_FREE_PAGES);
        assert_eq!(
            give_back_all(&conn),
            (0, 0),
            "nothing given back, nothing failed"
        );
    }
}
