//! Mapping between `jobs` rows and [`Job`].

use rusqlite::{Connection, OptionalExtension, Params, Row};
use serde_json::Value;

use crate::model::{Job, JobId, JobStatus, Millis, Progress, ScheduleTick};
use crate::store::{StoreError, StoreResult};

/// Turns a SQLite failure into the store's error: a value that cannot be
/// read as what its column should hold is corrupt data, anything else the
/// database failing. The operation is named by the adapter
/// ([`crate::store::during`]).
pub(super) fn db_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::backend_corrupt("sqlite", e),
        other => StoreError::backend_unavailable("sqlite", other),
    }
}

/// A column of `row` whose stored value cannot be decoded.
fn corrupt(row: &Row<'_>, column: &str, detail: impl std::fmt::Display) -> rusqlite::Error {
    let index = row.as_ref().column_index(column).unwrap_or_default();
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("jobs.{column}: {detail}").into(),
    )
}

fn json_column(row: &Row<'_>, name: &str) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(name)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(row, name, e)))
        .transpose()
}

/// Reads a full `jobs` row.
pub(super) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let id: String = row.get("id")?;
    let status: String = row.get("status")?;
    let items_processed: Option<i64> = row.get("items_processed")?;
    let total_items: Option<i64> = row.get("total_items")?;
    Ok(Job {
        id: id.parse().map_err(|e| corrupt(row, "id", e))?,
        job_type: row.get("job_type")?,
        remote: row.get::<_, i64>("remote")? != 0,
        user_id: row.get("user_id")?,
        concurrency_key: row.get("concurrency_key")?,
        status: status.parse().map_err(|e| corrupt(row, "status", e))?,
        priority: row.get("priority")?,
        parameters: json_column(row, "parameters")?.unwrap_or(Value::Null),
        result: json_column(row, "result")?,
        error: row.get("error")?,
        progress: Progress {
            fraction: row.get("progress")?,
            items_processed: items_processed.map(|n| n.max(0) as u64),
            total_items: total_items.map(|n| n.max(0) as u64),
        },
        attempts: row.get("attempts")?,
        max_attempts: row.get("max_attempts")?,
        interruptions: row.get("interruptions")?,
        timeout_seconds: row.get("timeout_seconds")?,
        created_at: row.get("created_at")?,
        scheduled_for: row.get("scheduled_for")?,
        started_at: row.get("started_at")?,
        completed_at: row.get("completed_at")?,
        updated_at: row.get("updated_at")?,
        worker_id: row.get("worker_id")?,
        revision: row.get("revision")?,
        depends_on: json_column(row, "depends_on")?
            .map(|ids| serde_json::from_value(ids).map_err(|e| corrupt(row, "depends_on", e)))
            .transpose()?
            .unwrap_or_default(),
        waiting_dependencies: row.get("waiting_dependencies")?,
        cancelled_by: row
            .get::<_, Option<String>>("cancelled_by")?
            .map(|id| id.parse().map_err(|e| corrupt(row, "cancelled_by", e)))
            .transpose()?,
        expires_at: row.get("expires_at")?,
        schedule: row
            .get::<_, Option<String>>("schedule")?
            .zip(row.get::<_, Option<Millis>>("schedule_tick")?)
            .map(|(name, tick)| ScheduleTick { name, tick }),
    })
}

/// Runs a statement that returns at most one job row.
pub(super) fn query_job(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> StoreResult<Option<Job>> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, job_from_row).optional())
        .map_err(db_err)
}

/// Reads one job by id.
pub(super) fn select_job(conn: &Connection, id: JobId) -> rusqlite::Result<Option<Job>> {
    conn.prepare_cached(super::sql::SELECT_JOB)?
        .query_row(
            rusqlite::named_params! {":id": id.to_string()},
            job_from_row,
        )
        .optional()
}

/// Runs a statement that returns job rows.
pub(super) fn query_jobs(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> StoreResult<Vec<Job>> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(params, job_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db_err)
}

/// The current status of a job, for explaining why a conditional update
/// matched no row.
pub(super) fn status_of(conn: &Connection, id: JobId) -> StoreResult<Option<JobStatus>> {
    Ok(select_job(conn, id).map_err(db_err)?.map(|job| job.status))
}

/// A JSON value as stored text.
pub(super) fn json_text(value: &Value) -> String {
    value.to_string()
}
