//! Turning script replies into jobs and workers.

use redis::Value;
use serde_json::Value as Json;

use crate::model::{Admission, Job, JobId, JobStatus, Millis, NewJob, Progress, ScheduleTick};
use crate::store::{
    LogEntry, LogPage, Outcome, Serves, StoreError, StoreResult, WorkerInfo, WorkerRecord,
};

/// A reply or stored field that cannot be decoded. The operation is named
/// by the adapter ([`crate::store::during`]).
pub(super) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::backend_corrupt("redis", format!("undecodable: {what}"))
}

/// A reply item as text.
pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// A job as `submit.lua` stored it: `new` with the reply's `{status,
/// waiting_dependencies, cancelled_by or '', error or ''}`.
pub(super) fn submitted_job(new: NewJob, now: Millis, reply: Vec<Value>) -> StoreResult<Job> {
    let field = |i: usize| reply.get(i).and_then(text).unwrap_or_default();
    let status: JobStatus = field(0)
        .parse()
        .map_err(|_| corrupt(format!("submit status {:?}", field(0))))?;
    let admission = Admission {
        status,
        waiting_dependencies: field(1).parse().unwrap_or(0),
        cancelled: field(2).parse().ok().map(|by| (by, field(3))),
    };
    Ok(new.stored(now, admission))
}

/// A reply as an array.
pub(super) fn array(value: Value) -> StoreResult<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(format!("{other:?}"))),
    }
}

/// A hash's fields, borrowed from a flat field/value array (HGETALL). A
/// job has about twenty: looking through them beats hashing each name.
pub(super) struct Fields<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Fields<'a> {
    /// The fields of `values`; items that are not text are skipped.
    pub(super) fn of(values: &'a [Value]) -> Fields<'a> {
        Fields(
            values
                .chunks_exact(2)
                .filter_map(|pair| Some((as_str(&pair[0])?, as_str(&pair[1])?)))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| *value)
    }
}

fn as_str(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// A list of ids.
pub(super) fn ids(value: Value) -> StoreResult<Vec<JobId>> {
    Ok(array(value)?
        .iter()
        .filter_map(text)
        .filter_map(|id| id.parse().ok())
        .collect())
}

fn num<T: std::str::FromStr>(map: &Fields<'_>, name: &str) -> Option<T> {
    map.get(name).and_then(|v| v.parse().ok())
}

fn required<T: std::str::FromStr>(map: &Fields<'_>, name: &str) -> StoreResult<T> {
    num(map, name).ok_or_else(|| corrupt(format!("job field {name} missing or invalid")))
}

fn json(map: &Fields<'_>, name: &str) -> StoreResult<Option<Json>> {
    map.get(name)
        .map(|text| serde_json::from_str(text).map_err(|e| corrupt(format!("{name}: {e}"))))
        .transpose()
}

/// A job from its hash's fields.
pub(super) fn job(map: &Fields<'_>) -> StoreResult<Job> {
    let status: String = required(map, "status")?;
    Ok(Job {
        id: required(map, "id")?,
        job_type: required(map, "job_type")?,
        remote: map.get("remote") == Some("1"),
        user_id: required(map, "user_id")?,
        concurrency_key: map.get("concurrency_key").map(str::to_owned),
        status: status.parse().map_err(corrupt)?,
        priority: required(map, "priority")?,
        parameters: json(map, "parameters")?.unwrap_or(Json::Null),
        result: json(map, "result")?,
        error: map.get("error").map(str::to_owned),
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
        worker_id: map.get("worker_id").map(str::to_owned),
        revision: num(map, "revision").unwrap_or(0),
        depends_on: map
            .get("depends_on")
            .map(|ids| ids.split(',').filter_map(|id| id.parse().ok()).collect())
            .unwrap_or_default(),
        waiting_dependencies: num(map, "waiting_dependencies").unwrap_or(0),
        cancelled_by: num(map, "cancelled_by"),
        expires_at: num(map, "expires_at"),
        schedule: map
            .get("schedule")
            .zip(num(map, "schedule_tick"))
            .map(|(name, tick)| ScheduleTick {
                name: name.to_owned(),
                tick,
            }),
    })
}

/// The fields a claim reads of each job, in the order `claim_jobs.lua`
/// returns their values (it uses the first two itself). A claimed job was
/// pending: fields a pending job has no value for (a result, a worker,
/// waiting dependencies) and those the claim sets (`Job::start_attempt`)
/// are not read, which keeps the claim's work in Lua small. Nor is
/// `remote`: the claim's route says it (a built-in claim reads only
/// built-in queues), and a field a hash lacks, as a built-in job's lacks
/// `remote`, costs a scan of the whole hash to find missing.
pub(super) const CLAIMED_FIELDS: [&str; 20] = [
    "attempts",
    "revision",
    "id",
    "job_type",
    "user_id",
    "status",
    "priority",
    "parameters",
    "max_attempts",
    "interruptions",
    "timeout_seconds",
    "created_at",
    "updated_at",
    "scheduled_for",
    "depends_on",
    "progress",
    "items_processed",
    "total_items",
    "expires_at",
    "concurrency_key",
];

/// A claimed job from the values of [`CLAIMED_FIELDS`], as it was before
/// the claim, by a claim for `serves`.
pub(super) fn claimed_job(value: Value, serves: &Serves) -> StoreResult<Job> {
    let mut job = named_values(&CLAIMED_FIELDS, value)?;
    job.remote = matches!(serves, Serves::Remote(_));
    Ok(job)
}

/// Every field of a stored job that [`job`] reads, in the order scripts
/// that return a job's values (not its whole hash) return them.
pub(super) const JOB_FIELDS: [&str; 30] = [
    "id",
    "job_type",
    "remote",
    "user_id",
    "status",
    "priority",
    "parameters",
    "result",
    "error",
    "progress",
    "items_processed",
    "total_items",
    "attempts",
    "max_attempts",
    "interruptions",
    "timeout_seconds",
    "created_at",
    "scheduled_for",
    "started_at",
    "completed_at",
    "updated_at",
    "worker_id",
    "revision",
    "depends_on",
    "waiting_dependencies",
    "cancelled_by",
    "expires_at",
    "concurrency_key",
    "schedule",
    "schedule_tick",
];

/// The fields a listing reads: [`JOB_FIELDS`], less `parameters` and
/// `result` unless asked for, with the fields of unbounded size
/// (`parameters`, `result`, `error`) first; and how many of those lead.
pub(super) fn list_fields(with_parameters: bool, with_result: bool) -> (Vec<&'static str>, usize) {
    let big: Vec<&'static str> = [
        ("parameters", with_parameters),
        ("result", with_result),
        ("error", true),
    ]
    .into_iter()
    .filter_map(|(name, read)| read.then_some(name))
    .collect();
    let leading = big.len();
    let rest = JOB_FIELDS
        .into_iter()
        .filter(|name| !matches!(*name, "parameters" | "result" | "error"));
    (big.into_iter().chain(rest).collect(), leading)
}

/// A job from the values of `names`, in order (an HMGET's reply).
pub(super) fn named_values(names: &[&str], value: Value) -> StoreResult<Job> {
    let values = array(value)?;
    let fields = Fields(
        names
            .iter()
            .zip(&values)
            .filter_map(|(name, value)| Some((*name, as_str(value)?)))
            .collect(),
    );
    job(&fields)
}

/// A job from the values of [`JOB_FIELDS`].
pub(super) fn job_values(value: Value) -> StoreResult<Job> {
    named_values(&JOB_FIELDS, value)
}

/// An ended attempt's job from the values of [`JOB_FIELDS`], or `{}` for a
/// lost claim.
pub(super) fn finished_job(id: JobId, reply: Value) -> StoreResult<Job> {
    match reply {
        Value::Array(items) if items.is_empty() => Err(StoreError::ClaimLost(id)),
        Value::Nil => Err(StoreError::ClaimLost(id)),
        other => named_values(&JOB_FIELDS, other),
    }
}

/// A worker record from `workers.lua`'s `{fields, held ids}`.
pub(super) fn worker(value: Value) -> StoreResult<WorkerRecord> {
    let mut parts = array(value)?.into_iter();
    let (Some(info), Some(held)) = (parts.next(), parts.next()) else {
        return Err(corrupt("worker entry"));
    };
    let info = array(info)?;
    let map = Fields::of(&info);
    Ok(WorkerRecord {
        info: WorkerInfo {
            worker_id: required(&map, "worker_id")?,
            host: required(&map, "host")?,
            pid: required(&map, "pid")?,
            started_at: required(&map, "started_at")?,
            concurrency: required(&map, "concurrency")?,
            serves: serves_from_text(map.get("serves").unwrap_or_default())?,
        },
        last_heartbeat: required(&map, "last_heartbeat")?,
        running_jobs: ids(held)?,
    })
}

/// What a worker serves as its registration holds it: '' for a built-in
/// worker, else the JSON array of its remote types.
pub(super) fn serves_text(serves: &Serves) -> String {
    match serves {
        Serves::BuiltIn => String::new(),
        Serves::Remote(types) => Json::from(types.clone()).to_string(),
    }
}

/// The inverse of [`serves_text`] (a worker registered before routing has
/// no `serves`: built-in).
fn serves_from_text(text: &str) -> StoreResult<Serves> {
    if text.is_empty() {
        return Ok(Serves::BuiltIn);
    }
    serde_json::from_str(text)
        .map(Serves::Remote)
        .map_err(|e| corrupt(format!("worker serves: {e}")))
}

/// Decodes `{'ok', job...} | {'not_found'} | {'conflict', status}`.
pub(super) fn checked_job(id: JobId, reply: Value) -> StoreResult<Job> {
    let items = array(reply)?;
    let tag = items.first().and_then(text).unwrap_or_default();
    match tag.as_str() {
        "ok" => job(&Fields::of(items.get(1..).unwrap_or_default())),
        "not_found" => Err(StoreError::NotFound(id)),
        "conflict" => {
            let current = items
                .get(1)
                .and_then(text)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("conflict reply"))?;
            Err(StoreError::Conflict { id, current })
        }
        "quota" => Err(quota_refusal(&items)?),
        other => Err(corrupt(format!("reply tag {other:?}"))),
    }
}

/// A script's `{'quota', user, quota}` refusal as the store's error.
pub(super) fn quota_refusal(items: &[Value]) -> StoreResult<StoreError> {
    let user_id = items
        .get(1)
        .and_then(text)
        .ok_or_else(|| corrupt("quota reply"))?;
    let limit = items
        .get(2)
        .and_then(text)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt("quota reply"))?;
    Ok(StoreError::QuotaExceeded { user_id, limit })
}

/// A completed job as `finish_attempts.lua` left it, from the job as its
/// worker held it and the new revision (the script's compact reply).
pub(super) fn completed_snapshot(
    mut job: Job,
    outcome: &Outcome,
    revision: i64,
    now: Millis,
) -> Job {
    job.status = JobStatus::Completed;
    if let Outcome::Completed { result } = outcome {
        job.result = Some(result.clone());
    }
    job.error = None;
    job.progress.fraction = 1.0;
    job.completed_at = Some(now);
    job.scheduled_for = None;
    job.updated_at = now;
    job.worker_id = None;
    job.revision = revision;
    job
}

/// Decodes a job, or `{}` for a lost claim.
pub(super) fn fenced_job(id: JobId, reply: Value) -> StoreResult<Job> {
    let items = array(reply)?;
    if items.is_empty() {
        return Err(StoreError::ClaimLost(id));
    }
    job(&Fields::of(&items))
}

/// A page of a job's log as `read_log.lua` answers it: the job's status,
/// then entries `seq\tat\tattempt\tstream\ttext`; `None` when the job
/// does not exist.
pub(super) fn log_page(reply: Value, after: u64) -> StoreResult<Option<LogPage>> {
    let mut items = array(reply)?.into_iter();
    let Some(status) = items.next() else {
        return Ok(None);
    };
    let status: JobStatus = text(&status)
        .ok_or_else(|| corrupt("log page status"))?
        .parse()
        .map_err(corrupt)?;
    let lines = items
        .map(|item| log_entry(&text(&item).ok_or_else(|| corrupt("log entry"))?))
        .collect::<StoreResult<Vec<_>>>()?;
    let next = lines.last().map_or(after, |line| line.seq);
    Ok(Some(LogPage {
        lines,
        next,
        status,
    }))
}

fn log_entry(entry: &str) -> StoreResult<LogEntry> {
    let mut parts = entry.splitn(5, '\t');
    let mut next = || parts.next().ok_or_else(|| corrupt("log entry"));
    let seq = next()?.parse().map_err(corrupt)?;
    let at = next()?.parse().map_err(corrupt)?;
    let attempt = next()?.parse().map_err(corrupt)?;
    let stream = next()?.parse().map_err(corrupt)?;
    let text = next()?.to_owned();
    Ok(LogEntry {
        seq,
        at,
        attempt,
        stream,
        text,
    })
}
