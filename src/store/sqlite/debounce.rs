//! Debounced submission on SQLite: the key's lookup, the collapse into its
//! waiting job or the new job's insert, and the key's record in one write
//! transaction, so concurrent submissions with one key (from any process
//! on the file) store one job while it waits.

use rusqlite::{Connection, OptionalExtension, named_params};

use super::ops::insert_jobs;
use super::rows::{db_err, json_text, query_job};
use super::sql;
use crate::model::{Debounce, JobId, Millis, NewJob, Submitted};
use crate::store::{StoreError, StoreResult};

/// Collapses `job` into the waiting job of its debounce key, or stores it
/// (see `Store::submit_debounced`); inside the caller's transaction.
pub(super) fn submit_debounced_in(
    conn: &Connection,
    mut job: NewJob,
    debounce: &Debounce,
    quota: Option<u64>,
    now: Millis,
) -> StoreResult<Submitted> {
    let held: Option<(String, Millis)> = conn
        .prepare_cached(sql::SELECT_DEBOUNCE_KEY)
        .and_then(|mut stmt| {
            stmt.query_row(
                named_params! {
                    ":user_id": job.user_id,
                    ":job_type": job.job_type,
                    ":key": debounce.key,
                },
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
        })
        .map_err(db_err)?;
    if let Some((job_id, first_at)) = held {
        let job_id: JobId = job_id
            .parse()
            .map_err(|e| StoreError::corrupt("submit_debounced", format!("key's job id: {e}")))?;
        let collapsed = query_job(
            conn,
            sql::DEBOUNCE_JOB,
            named_params! {
                ":id": job_id.to_string(),
                ":parameters": json_text(&job.parameters),
                ":priority": job.priority,
                ":max_attempts": job.max_attempts,
                ":timeout_seconds": job.timeout_seconds,
                ":scheduled_for": debounce.due(first_at, now),
                ":expires_at": job.expires_in.map(|after| now.saturating_add(after)),
                ":concurrency_key": job.concurrency_key,
                ":now": now,
            },
        )?;
        if let Some(existing) = collapsed {
            return Ok(Submitted::Existing(existing));
        }
    }
    job.run_at = Some(debounce.first_due(now));
    let stored = insert_jobs(conn, vec![job], quota, now)?
        .pop()
        .ok_or_else(|| StoreError::corrupt("submit_debounced", "the store stored no job"))?;
    conn.prepare_cached(sql::UPSERT_DEBOUNCE_KEY)
        .and_then(|mut stmt| {
            stmt.execute(named_params! {
                ":user_id": stored.user_id,
                ":job_type": stored.job_type,
                ":key": debounce.key,
                ":job_id": stored.id.to_string(),
                ":first_at": now,
                ":expires_at": now.saturating_add(debounce.max_wait_millis),
            })
        })
        .map_err(db_err)?;
    Ok(Submitted::Created(stored))
}

/// Deletes the keys whose job is past its longest wait; how many.
pub(super) fn delete_expired_keys_in(conn: &Connection, now: Millis) -> StoreResult<usize> {
    conn.prepare_cached(sql::DELETE_EXPIRED_DEBOUNCE_KEYS)
        .and_then(|mut stmt| stmt.execute(named_params! {":now": now}))
        .map_err(db_err)
}
