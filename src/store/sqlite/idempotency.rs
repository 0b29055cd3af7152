//! Idempotent submission on SQLite: the key's lookup, the job's insert and
//! the key's record in one write transaction, so concurrent submissions
//! with one key (from any process on the file) store one job.

use rusqlite::{Connection, OptionalExtension, named_params};

use super::ops::insert_jobs;
use super::rows::{db_err, select_job};
use super::sql;
use crate::model::{IdempotencyKey, JobId, Millis, NewJob, Submitted};
use crate::store::{StoreError, StoreResult};

/// Stores `job` unless `key` holds a job of its user (see
/// `Store::submit_once`); inside the caller's transaction.
pub(super) fn submit_once_in(
    conn: &Connection,
    job: NewJob,
    key: &IdempotencyKey,
    quota: Option<u64>,
    now: Millis,
) -> StoreResult<Submitted> {
    let held: Option<(String, String)> = conn
        .prepare_cached(sql::SELECT_IDEMPOTENCY_KEY)
        .and_then(|mut stmt| {
            stmt.query_row(
                named_params! {":user_id": job.user_id, ":key": key.key, ":now": now},
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
        })
        .map_err(db_err)?;
    if let Some((fingerprint, job_id)) = held {
        let job_id: JobId = job_id
            .parse()
            .map_err(|e| StoreError::corrupt("submit_once", format!("key's job id: {e}")))?;
        // A key whose job retention deleted holds nothing any more.
        if let Some(existing) = select_job(conn, job_id).map_err(db_err)? {
            if fingerprint != key.fingerprint {
                return Err(StoreError::IdempotencyMismatch {
                    key: key.key.clone(),
                    job_id,
                });
            }
            return Ok(Submitted::Existing(existing));
        }
    }
    let mut stored = insert_jobs(conn, vec![job], quota, now)?;
    let job = stored
        .pop()
        .ok_or_else(|| StoreError::corrupt("submit_once", "the store stored no job"))?;
    conn.prepare_cached(sql::UPSERT_IDEMPOTENCY_KEY)
        .and_then(|mut stmt| {
            stmt.execute(named_params! {
                ":user_id": job.user_id,
                ":key": key.key,
                ":fingerprint": key.fingerprint,
                ":job_id": job.id.to_string(),
                ":expires_at": now.saturating_add(key.ttl_millis),
            })
        })
        .map_err(db_err)?;
    Ok(Submitted::Created(job))
}

/// Deletes the keys past their lifetime; how many.
pub(super) fn delete_expired_keys_in(conn: &Connection, now: Millis) -> StoreResult<usize> {
    conn.prepare_cached(sql::DELETE_EXPIRED_IDEMPOTENCY_KEYS)
        .and_then(|mut stmt| stmt.execute(named_params! {":now": now}))
        .map_err(db_err)
}
