//! Mapping between `jobs` rows and [`Job`].

use rusqlite::{Connection, OptionalExtension, Params, Row, Statement, named_params};
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

/// Declares [`JobColumns`]: a field per `jobs` column a [`Job`] is read
/// from, holding that column's position in a statement's rows.
macro_rules! job_columns {
    ($($column:ident),* $(,)?) => {
        /// Where each column of a job is in a statement's rows, looked up
        /// once per statement: looking a column up by name on every row
        /// took a tenth of a 1,000-job batch's time in the writer.
        pub(super) struct JobColumns {
            $(pub(super) $column: usize,)*
        }

        impl JobColumns {
            /// The positions in `stmt`'s rows; an error if one is missing.
            pub(super) fn of(stmt: &Statement<'_>) -> rusqlite::Result<JobColumns> {
                Ok(JobColumns {
                    $($column: stmt.column_index(stringify!($column))?,)*
                })
            }
        }
    };
}

job_columns!(
    id,
    job_type,
    remote,
    user_id,
    concurrency_key,
    status,
    priority,
    parameters,
    result,
    error,
    progress,
    items_processed,
    total_items,
    attempts,
    max_attempts,
    interruptions,
    timeout_seconds,
    created_at,
    scheduled_for,
    started_at,
    completed_at,
    updated_at,
    worker_id,
    revision,
    depends_on,
    waiting_dependencies,
    cancelled_by,
    expires_at,
    schedule,
    schedule_tick,
);

/// Column `index` (named `name`) of a job row, whose stored value cannot
/// be decoded.
fn corrupt(index: usize, name: &str, detail: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("jobs.{name}: {detail}").into(),
    )
}

fn json_column(row: &Row<'_>, index: usize, name: &str) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(index, name, e)))
        .transpose()
}

/// Reads a full `jobs` row whose columns are where `c` says.
pub(super) fn job_from_row(row: &Row<'_>, c: &JobColumns) -> rusqlite::Result<Job> {
    let id: String = row.get(c.id)?;
    let status: String = row.get(c.status)?;
    let items_processed: Option<i64> = row.get(c.items_processed)?;
    let total_items: Option<i64> = row.get(c.total_items)?;
    Ok(Job {
        id: id.parse().map_err(|e| corrupt(c.id, "id", e))?,
        job_type: row.get(c.job_type)?,
        remote: row.get::<_, i64>(c.remote)? != 0,
        user_id: row.get(c.user_id)?,
        concurrency_key: row.get(c.concurrency_key)?,
        status: status.parse().map_err(|e| corrupt(c.status, "status", e))?,
        priority: row.get(c.priority)?,
        parameters: json_column(row, c.parameters, "parameters")?.unwrap_or(Value::Null),
        result: json_column(row, c.result, "result")?,
        error: row.get(c.error)?,
        progress: Progress {
            fraction: row.get(c.progress)?,
            items_processed: items_processed.map(|n| n.max(0) as u64),
            total_items: total_items.map(|n| n.max(0) as u64),
        },
        attempts: row.get(c.attempts)?,
        max_attempts: row.get(c.max_attempts)?,
        interruptions: row.get(c.interruptions)?,
        timeout_seconds: row.get(c.timeout_seconds)?,
        created_at: row.get(c.created_at)?,
        scheduled_for: row.get(c.scheduled_for)?,
        started_at: row.get(c.started_at)?,
        completed_at: row.get(c.completed_at)?,
        updated_at: row.get(c.updated_at)?,
        worker_id: row.get(c.worker_id)?,
        revision: row.get(c.revision)?,
        depends_on: json_column(row, c.depends_on, "depends_on")?
            .map(|ids| {
                serde_json::from_value(ids).map_err(|e| corrupt(c.depends_on, "depends_on", e))
            })
            .transpose()?
            .unwrap_or_default(),
        waiting_dependencies: row.get(c.waiting_dependencies)?,
        cancelled_by: row
            .get::<_, Option<String>>(c.cancelled_by)?
            .map(|id| {
                id.parse()
                    .map_err(|e| corrupt(c.cancelled_by, "cancelled_by", e))
            })
            .transpose()?,
        expires_at: row.get(c.expires_at)?,
        schedule: row
            .get::<_, Option<String>>(c.schedule)?
            .zip(row.get::<_, Option<Millis>>(c.schedule_tick)?)
            .map(|(name, tick)| ScheduleTick { name, tick }),
    })
}

/// Runs a statement that returns at most one job row.
pub(super) fn query_job(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> StoreResult<Option<Job>> {
    query_jobs(conn, sql, params).map(|jobs| jobs.into_iter().next())
}

/// Reads one job by id.
pub(super) fn select_job(conn: &Connection, id: JobId) -> rusqlite::Result<Option<Job>> {
    let mut stmt = conn.prepare_cached(super::sql::SELECT_JOB)?;
    let columns = JobColumns::of(&stmt)?;
    stmt.query_row(named_params! {":id": id.to_string()}, |row| {
        job_from_row(row, &columns)
    })
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
            let columns = JobColumns::of(&stmt)?;
            stmt.query_map(params, |row| job_from_row(row, &columns))?
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
