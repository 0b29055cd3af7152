//! Turning script replies into jobs and workers.

use std::collections::HashMap;

use redis::Value;
use serde_json::Value as Json;

use crate::model::{Job, JobId, Progress};
use crate::store::{StoreError, StoreResult, WorkerInfo, WorkerRecord};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: unexpected reply: {what}"))
}

/// A reply item as text.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// A reply as an array.
pub fn array(value: Value) -> StoreResult<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(format!("{other:?}"))),
    }
}

/// A flat field/value array (HGETALL) as a map.
pub fn fields(values: &[Value]) -> HashMap<String, String> {
    values
        .chunks_exact(2)
        .filter_map(|pair| Some((text(&pair[0])?, text(&pair[1])?)))
        .collect()
}

/// A list of ids.
pub fn ids(value: Value) -> StoreResult<Vec<JobId>> {
    Ok(array(value)?
        .iter()
        .filter_map(text)
        .filter_map(|id| id.parse().ok())
        .collect())
}

fn num<T: std::str::FromStr>(map: &HashMap<String, String>, name: &str) -> Option<T> {
    map.get(name).and_then(|v| v.parse().ok())
}

fn required<T: std::str::FromStr>(map: &HashMap<String, String>, name: &str) -> StoreResult<T> {
    num(map, name).ok_or_else(|| corrupt(format!("job field {name} missing or invalid")))
}

fn json(map: &HashMap<String, String>, name: &str) -> StoreResult<Option<Json>> {
    map.get(name)
        .map(|text| serde_json::from_str(text).map_err(|e| corrupt(format!("{name}: {e}"))))
        .transpose()
}

/// A job from its hash's fields.
pub fn job(map: &HashMap<String, String>) -> StoreResult<Job> {
    let status: String = required(map, "status")?;
    Ok(Job {
        id: required(map, "id")?,
        job_type: required(map, "job_type")?,
        user_id: required(map, "user_id")?,
        status: status.parse().map_err(corrupt)?,
        priority: required(map, "priority")?,
        parameters: json(map, "parameters")?.unwrap_or(Json::Null),
        result: json(map, "result")?,
        error: map.get("error").cloned(),
        progress: Progress {
            fraction: num(map, "progress").unwrap_or(0.0),
            items_processed: num(map, "items_processed"),
            total_items: num(map, "total_items"),
        },
        attempts: num(map, "attempts").unwrap_or(0),
        max_attempts: num(map, "max_attempts").unwrap_or(1),
        interruptions: num(map, "interruptions").unwrap_or(0),
        timeout_seconds: num(map, "timeout_seconds"),
        created_at: required(map, "created_at")?,
        scheduled_for: num(map, "scheduled_for"),
        started_at: num(map, "started_at"),
        completed_at: num(map, "completed_at"),
        updated_at: required(map, "updated_at")?,
        worker_id: map.get("worker_id").cloned(),
        revision: num(map, "revision").unwrap_or(0),
        depends_on: map
            .get("depends_on")
            .map(|ids| ids.split(',').filter_map(|id| id.parse().ok()).collect())
            .unwrap_or_default(),
        waiting_dependencies: num(map, "waiting_dependencies").unwrap_or(0),
        cancelled_by: num(map, "cancelled_by"),
    })
}

/// A job from a flat HGETALL array.
pub fn job_from(value: Value) -> StoreResult<Job> {
    job(&fields(&array(value)?))
}

/// A worker record from `workers.lua`'s `{fields, held ids}`.
pub fn worker(value: Value) -> StoreResult<WorkerRecord> {
    let mut parts = array(value)?.into_iter();
    let (Some(info), Some(held)) = (parts.next(), parts.next()) else {
        return Err(corrupt("worker entry"));
    };
    let map = fields(&array(info)?);
    Ok(WorkerRecord {
        info: WorkerInfo {
            worker_id: required(&map, "worker_id")?,
            host: required(&map, "host")?,
            pid: required(&map, "pid")?,
            started_at: required(&map, "started_at")?,
            concurrency: required(&map, "concurrency")?,
        },
        last_heartbeat: required(&map, "last_heartbeat")?,
        running_jobs: ids(held)?,
    })
}
