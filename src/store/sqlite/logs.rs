//! Per-job logs on SQLite (`sql/job_logs.sql`): an append under the job's
//! claim, numbered on from the job's last line and cut to the cap in the
//! same write; a page read after a line number.

use rusqlite::{Connection, OptionalExtension, named_params};

use super::rows::db_err;
use super::sql;
use crate::model::{JobId, JobStatus, Millis};
use crate::store::{ClaimRef, LogEntry, LogLine, LogPage, StoreError, StoreResult};

/// Appends `lines` to the log of the job `claim` holds, at `now`, then
/// drops its oldest lines past `max_bytes`. Runs inside one write.
pub(super) fn append_log_in(
    conn: &Connection,
    claim: ClaimRef,
    lines: &[LogLine],
    max_bytes: usize,
    now: Millis,
) -> StoreResult<()> {
    let job_id = claim.job_id.to_string();
    let attempt: Option<i64> = conn
        .prepare_cached(sql::LOG_CLAIM)
        .and_then(|mut stmt| {
            stmt.query_row(
                named_params! {":id": job_id, ":token": claim.token.to_string()},
                |row| row.get(0),
            )
            .optional()
        })
        .map_err(db_err)?;
    let Some(attempt) = attempt else {
        return Err(StoreError::ClaimLost(claim.job_id));
    };
    if lines.is_empty() {
        return Ok(());
    }
    let added: usize = lines.iter().map(|line| line.text.len()).sum();
    let (last_seq, bytes): (i64, i64) = conn
        .prepare_cached(sql::LOG_RESERVE)
        .and_then(|mut stmt| {
            stmt.query_row(
                named_params! {
                    ":job_id": job_id,
                    ":count": lines.len() as i64,
                    ":bytes": added as i64,
                },
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
        })
        .map_err(db_err)?;
    let first_seq = last_seq - lines.len() as i64 + 1;
    let mut insert = conn.prepare_cached(sql::INSERT_LOG_LINE).map_err(db_err)?;
    for (seq, line) in (first_seq..).zip(lines) {
        insert
            .execute(named_params! {
                ":job_id": job_id,
                ":seq": seq,
                ":at": now,
                ":attempt": attempt,
                ":stream": line.stream.as_str(),
                ":line": line.text,
            })
            .map_err(db_err)?;
    }
    let excess = bytes - i64::try_from(max_bytes).unwrap_or(i64::MAX);
    if excess > 0 {
        trim_in(conn, &job_id, excess)?;
    }
    Ok(())
}

/// Drops the fewest oldest lines of a job's log that free `excess` bytes
/// of text: reads the lines it drops (and one more), not the whole log.
fn trim_in(conn: &Connection, job_id: &str, excess: i64) -> StoreResult<()> {
    let mut freed = 0i64;
    let mut upto = None;
    {
        let mut oldest = conn.prepare_cached(sql::OLDEST_LOG_LINES).map_err(db_err)?;
        let mut rows = oldest
            .query(named_params! {":job_id": job_id})
            .map_err(db_err)?;
        while freed < excess {
            let Some(row) = rows.next().map_err(db_err)? else {
                break;
            };
            let (seq, bytes): (i64, i64) =
                (row.get(0).map_err(db_err)?, row.get(1).map_err(db_err)?);
            freed += bytes;
            upto = Some(seq);
        }
    }
    let Some(upto) = upto else { return Ok(()) };
    conn.prepare_cached(sql::DROP_LOG_LINES)
        .and_then(|mut stmt| stmt.execute(named_params! {":job_id": job_id, ":upto": upto}))
        .map_err(db_err)?;
    conn.prepare_cached(sql::LOG_TRIMMED)
        .and_then(|mut stmt| stmt.execute(named_params! {":job_id": job_id, ":freed": freed}))
        .map_err(db_err)?;
    Ok(())
}

/// Reads up to `limit` lines of job `id`'s log after line `after`; the
/// job's status first, so that a terminal page is complete.
pub(super) fn read_log_in(
    conn: &Connection,
    id: JobId,
    after: u64,
    limit: usize,
) -> StoreResult<LogPage> {
    let job_id = id.to_string();
    let status: Option<String> = conn
        .prepare_cached(sql::JOB_STATUS)
        .and_then(|mut stmt| {
            stmt.query_row(named_params! {":id": job_id}, |row| row.get(0))
                .optional()
        })
        .map_err(db_err)?;
    let status: JobStatus = status
        .ok_or(StoreError::NotFound(id))?
        .parse()
        .map_err(|e| StoreError::backend_corrupt("sqlite", e))?;
    let after_seq = i64::try_from(after).unwrap_or(i64::MAX);
    let rows: Vec<(i64, i64, i64, String, String)> = conn
        .prepare_cached(sql::SELECT_LOG)
        .and_then(|mut stmt| {
            stmt.query_map(
                named_params! {
                    ":job_id": job_id,
                    ":after": after_seq,
                    ":limit": i64::try_from(limit).unwrap_or(i64::MAX),
                },
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )?
            .collect()
        })
        .map_err(db_err)?;
    let mut lines = Vec::with_capacity(rows.len());
    for (seq, at, attempt, stream, text) in rows {
        lines.push(LogEntry {
            seq: u64::try_from(seq).map_err(|e| StoreError::backend_corrupt("sqlite", e))?,
            at,
            attempt: u32::try_from(attempt).unwrap_or(0),
            stream: stream
                .parse()
                .map_err(|e: String| StoreError::backend_corrupt("sqlite", e))?,
            text,
        });
    }
    let next = lines.last().map_or(after, |line| line.seq);
    Ok(LogPage {
        lines,
        next,
        status,
    })
}
