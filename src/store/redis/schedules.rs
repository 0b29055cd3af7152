//! Schedules on Redis: a hash per schedule (`schedule:<name>`) and the
//! `schedules` set of names. A tick's claim is part of `submit.lua`, so
//! the claim and the job's insert are one script: of every node, one
//! stores the tick's job.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Value};

use super::bounded;
use super::keys::Keys;
use crate::model::{Millis, Schedule};
use crate::store::{StoreError, StoreResult};

/// Every schedule, by name.
pub(super) async fn list(mut conn: ConnectionManager, keys: &Keys) -> StoreResult<Vec<Schedule>> {
    let mut names: Vec<String> = bounded(conn.smembers(keys.named("schedules"))).await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    names.sort();
    let mut pipe = redis::pipe();
    for name in &names {
        pipe.hgetall(keys.schedule(name));
    }
    let all: Vec<HashMap<String, String>> = bounded(pipe.query_async(&mut conn)).await?;
    let mut schedules = Vec::with_capacity(names.len());
    for (name, fields) in names.into_iter().zip(all) {
        // Deleted between the two reads: gone.
        if !fields.is_empty() {
            schedules.push(decode(name, fields)?);
        }
    }
    Ok(schedules)
}

/// Deletes the schedule `name` and its entry in the set; whether there was
/// one.
pub(super) async fn delete(
    mut conn: ConnectionManager,
    keys: &Keys,
    name: &str,
) -> StoreResult<bool> {
    let (deleted, _): (u64, u64) = bounded(
        redis::pipe()
            .atomic()
            .del(keys.schedule(name))
            .srem(keys.named("schedules"), name)
            .query_async(&mut conn),
    )
    .await?;
    Ok(deleted == 1)
}

/// A schedule from a script's reply: its hash's fields and values (none:
/// no such schedule).
pub(super) fn from_reply(name: &str, reply: Value) -> StoreResult<Option<Schedule>> {
    let fields: HashMap<String, String> =
        redis::from_redis_value(reply).map_err(|e| StoreError::backend_corrupt("redis", e))?;
    if fields.is_empty() {
        return Ok(None);
    }
    decode(name.to_owned(), fields).map(Some)
}

fn decode(name: String, mut fields: HashMap<String, String>) -> StoreResult<Schedule> {
    let corrupt =
        |what: &str| StoreError::backend_corrupt("redis", format!("schedule {name}: {what}"));
    let mut take = |field: &str| fields.remove(field);
    let millis = |text: Option<String>, field: &str| -> StoreResult<Millis> {
        text.and_then(|t| t.parse().ok())
            .ok_or_else(|| corrupt(field))
    };
    let definition = take("definition").ok_or_else(|| corrupt("no definition"))?;
    let spec = serde_json::from_str(&definition).map_err(|_| corrupt("bad definition"))?;
    let origin = take("origin")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| corrupt("bad origin"))?;
    let paused = take("paused").as_deref() == Some("1");
    let revision = millis(take("revision"), "revision")?;
    let created_at = millis(take("created_at"), "created_at")?;
    let active_since = millis(take("active_since"), "active_since")?;
    let updated_at = millis(take("updated_at"), "updated_at")?;
    let last_tick_at = take("last_tick_at")
        .map(|t| millis(Some(t), "last_tick_at"))
        .transpose()?;
    let last_job_id = take("last_job_id")
        .map(|id| id.parse().map_err(|_| corrupt("bad last_job_id")))
        .transpose()?;
    Ok(Schedule {
        name,
        spec,
        origin,
        paused,
        revision,
        created_at,
        active_since,
        updated_at,
        last_tick_at,
        last_job_id,
    })
}
