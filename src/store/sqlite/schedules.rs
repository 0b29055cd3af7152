//! Schedules on SQLite (`sql/schedules.sql`): one row per schedule. A
//! tick's claim and its job's insert share one write transaction, so of
//! every process on the file, one stores the tick's job.

use rusqlite::{Connection, Row, named_params};

use super::ops::{execute, insert_jobs};
use super::rows::db_err;
use super::sql;
use crate::model::{Job, Millis, NewJob, Schedule, ScheduleOrigin, ScheduleSpec, ScheduleTick};
use crate::store::{StoreError, StoreResult};

/// The schedules, or the one named `name`, by name.
pub(super) fn select_schedules_in(
    conn: &Connection,
    name: Option<&str>,
) -> StoreResult<Vec<Schedule>> {
    let mut stmt = conn.prepare_cached(sql::SELECT_SCHEDULES).map_err(db_err)?;
    let rows = stmt
        .query_map(named_params! {":name": name}, raw_schedule)
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_err)?;
    rows.into_iter().map(decode).collect()
}

fn select_one(conn: &Connection, name: &str) -> StoreResult<Option<Schedule>> {
    Ok(select_schedules_in(conn, Some(name))?.pop())
}

/// Stores the schedule `name` (see `Store::put_schedule`).
pub(super) fn put_schedule_in(
    conn: &Connection,
    name: &str,
    spec: &ScheduleSpec,
    origin: ScheduleOrigin,
    replace: bool,
    now: Millis,
) -> StoreResult<(Schedule, bool)> {
    let definition = serde_json::to_string(spec)
        .map_err(|e| StoreError::corrupt("put_schedule", format!("definition: {e}")))?;
    let params = named_params! {
        ":name": name,
        ":definition": definition,
        ":origin": origin.as_str(),
        ":now": now,
    };
    let created = execute(conn, sql::INSERT_SCHEDULE, params)? == 1;
    if !created && replace {
        execute(conn, sql::REPLACE_SCHEDULE, params)?;
    }
    let schedule = select_one(conn, name)?
        .ok_or_else(|| StoreError::corrupt("put_schedule", "the schedule was not stored"))?;
    Ok((schedule, created))
}

/// Pauses or resumes the schedule `name`; the schedule after.
pub(super) fn pause_schedule_in(
    conn: &Connection,
    name: &str,
    paused: bool,
    now: Millis,
) -> StoreResult<Option<Schedule>> {
    execute(
        conn,
        sql::PAUSE_SCHEDULE,
        named_params! {":name": name, ":paused": paused, ":now": now},
    )?;
    select_one(conn, name)
}

/// Deletes the schedule `name`; whether there was one.
pub(super) fn delete_schedule_in(conn: &Connection, name: &str) -> StoreResult<bool> {
    Ok(execute(conn, sql::DELETE_SCHEDULE, named_params! {":name": name})? == 1)
}

/// Claims `tick` and stores `job` for it, or does nothing (see
/// `Store::fire_schedule`); inside the caller's transaction.
pub(super) fn fire_schedule_in(
    conn: &Connection,
    tick: &ScheduleTick,
    revision: i64,
    job: NewJob,
    quota: Option<u64>,
    now: Millis,
) -> StoreResult<Option<Job>> {
    let claimed = execute(
        conn,
        sql::CLAIM_SCHEDULE_TICK,
        named_params! {
            ":name": tick.name,
            ":revision": revision,
            ":tick": tick.tick,
            ":job_id": job.id.to_string(),
        },
    )?;
    if claimed == 0 {
        return Ok(None);
    }
    let job = NewJob {
        schedule: Some(tick.clone()),
        ..job
    };
    let job = insert_jobs(conn, vec![job], quota, now)?
        .pop()
        .ok_or_else(|| StoreError::corrupt("fire_schedule", "the store stored no job"))?;
    Ok(Some(job))
}

/// A schedule row's columns, undecoded.
type RawSchedule = (
    String,
    String,
    String,
    bool,
    i64,
    [Millis; 3],
    Option<Millis>,
    Option<String>,
);

fn raw_schedule(row: &Row<'_>) -> rusqlite::Result<RawSchedule> {
    Ok((
        row.get("name")?,
        row.get("definition")?,
        row.get("origin")?,
        row.get("paused")?,
        row.get("revision")?,
        [
            row.get("created_at")?,
            row.get("active_since")?,
            row.get("updated_at")?,
        ],
        row.get("last_tick_at")?,
        row.get("last_job_id")?,
    ))
}

fn decode(raw: RawSchedule) -> StoreResult<Schedule> {
    let (
        name,
        definition,
        origin,
        paused,
        revision,
        [created_at, active_since, updated_at],
        last_tick_at,
        last_job_id,
    ) = raw;
    let corrupt = |detail: String| StoreError::corrupt("schedules", format!("{name}: {detail}"));
    Ok(Schedule {
        spec: serde_json::from_str(&definition).map_err(|e| corrupt(format!("definition: {e}")))?,
        origin: origin.parse().map_err(corrupt)?,
        paused,
        revision,
        created_at,
        active_since,
        updated_at,
        last_tick_at,
        last_job_id: last_job_id
            .map(|id| id.parse().map_err(|e| corrupt(format!("last job id: {e}"))))
            .transpose()?,
        name,
    })
}
