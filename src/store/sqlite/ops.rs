//! The operations, each one function over a connection (`x_in`), run by
//! the adapter (`mod.rs`) inside one write or read: testable against a
//! bare connection, and free of lanes, chunking and publishing.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, named_params};
use serde_json::Value;
use uuid::Uuid;

use super::limits::Gate;
use super::rows::{JobColumns, db_err, job_from_row, json_text, query_job, query_jobs, status_of};
use super::sql;
use crate::model::{Admission, Job, JobId, JobStatus, Millis, NewJob, Progress, duration_millis};
use crate::store::{
    ClaimParams, ClaimRef, Claimed, ListPage, ListQuery, Outcome, RecoverParams, RecoverReport,
    Serves, StoreError, StoreResult, StoreStats, WorkerInfo, WorkerRecord,
};

/// The `meta` key under which the last cleanup time is kept.
const LAST_CLEANUP_KEY: &str = "last_cleanup";

pub(super) fn execute(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(db_err)
}

/// Explains why a conditional update on job `id` matched no row.
fn not_applicable(conn: &Connection, id: JobId) -> StoreError {
    match status_of(conn, id) {
        Ok(Some(current)) => StoreError::Conflict { id, current },
        Ok(None) => StoreError::NotFound(id),
        Err(e) => e,
    }
}

pub(super) fn claim_in(
    conn: &Connection,
    params: &ClaimParams,
    now: Millis,
) -> StoreResult<(Vec<Claimed>, Vec<Job>)> {
    // A claim never starts a job past its deadline: those expire first.
    let mut promoted = expire_in(conn, now)?;
    promoted.extend(query_jobs(
        conn,
        sql::PROMOTE_DUE,
        named_params! {":now": now},
    )?);
    let running: i64 = conn
        .query_row(sql::RUNNING_TOTAL, [], |row| row.get(0))
        .map_err(db_err)?;
    let free = params
        .max_jobs
        .min(params.global_max.saturating_sub(running.max(0) as usize));
    let claimed = match &params.serves {
        Serves::BuiltIn => claim_built_in(conn, params, free, now)?,
        Serves::Remote(types) if types.is_empty() || free == 0 => Vec::new(),
        Serves::Remote(types) => claim_remote(conn, params, types, free, now)?,
    };
    Ok((claimed, promoted))
}

/// The claim of a built-in worker: up to `free` jobs that are not remote.
/// Under limits ([`Gate`]) the claim statement skips jobs whose type or
/// key is at a limit, so a user whose next job waits still gets its others,
/// and a round looks past users with nothing claimable.
fn claim_built_in(
    conn: &Connection,
    params: &ClaimParams,
    mut free: usize,
    now: Millis,
) -> StoreResult<Vec<Claimed>> {
    let lease_until = now.saturating_add(duration_millis(params.lease));
    let mut gate = match params.limits.any() {
        true => Some(Gate::load(conn, &params.limits, now)?),
        false => None,
    };
    let mut claimed = Vec::new();
    let mut served: i64 = conn
        .query_row(sql::LAST_SERVED, [], |row| row.get(0))
        .map_err(db_err)?;
    // Each round gives every user with room one job (w for a user of
    // weight w), least recently served first, so a user with a long queue
    // never delays another by more than one round.
    while free > 0 {
        // Under limits some users may have nothing claimable: look further.
        let look = if gate.is_some() { free + 64 } else { free };
        let users: Vec<(String, i64)> = conn
            .prepare_cached(sql::CLAIM_USERS)
            .and_then(|mut stmt| {
                stmt.query_map(
                    named_params! {":per_user_max": params.per_user_max as i64, ":limit": look as i64},
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?
                .collect()
            })
            .map_err(db_err)?;
        let before = claimed.len();
        for (user_id, running) in &users {
            if free == 0 {
                break;
            }
            let room = params
                .per_user_max
                .saturating_sub(usize::try_from(*running).unwrap_or(0));
            let share = params.limits.weight(user_id).min(room).max(1);
            for _ in 0..share.min(free) {
                let token = Uuid::new_v4();
                let (blocked_types, blocked_keys) =
                    gate.as_ref().map_or(NONE_BLOCKED, Gate::blocked);
                let job = query_job(
                    conn,
                    sql::CLAIM_NEXT_OF_USER,
                    named_params! {
                        ":user_id": user_id,
                        ":worker_id": params.worker_id,
                        ":token": token.to_string(),
                        ":lease_until": lease_until,
                        ":now": now,
                        ":blocked_types": blocked_types,
                        ":blocked_keys": blocked_keys,
                    },
                )?;
                let Some(job) = job else { break };
                if let Some(gate) = &mut gate {
                    gate.started(conn, &job)?;
                }
                claimed.push(claimed_under(job, token));
                free -= 1;
            }
            served += 1;
            execute(
                conn,
                sql::MARK_USER_SERVED,
                named_params! {":user_id": user_id, ":served": served},
            )?;
        }
        if claimed.len() == before {
            break;
        }
    }
    Ok(claimed)
}

/// What a claim without limits skips: no type, no key.
const NONE_BLOCKED: (&str, &str) = ("[]", "[]");

/// A job a claim statement took, with the token it was given.
fn claimed_under(job: Job, token: Uuid) -> Claimed {
    let claim = ClaimRef {
        job_id: job.id,
        token,
    };
    Claimed { job, claim }
}

/// The claim of a remote worker: up to `free` remote jobs of `types`. Its
/// round-robin turns over the queues of one type and one user (a user
/// with jobs of two of the types has two queues), each round at most one
/// job per user, so the per-user limit read at the round's start holds.
fn claim_remote(
    conn: &Connection,
    params: &ClaimParams,
    types: &[String],
    mut free: usize,
    now: Millis,
) -> StoreResult<Vec<Claimed>> {
    let lease_until = now.saturating_add(duration_millis(params.lease));
    let types = serde_json::to_string(types).map_err(|e| StoreError::corrupt("claim", e))?;
    let mut gate = match params.limits.any() {
        true => Some(Gate::load(conn, &params.limits, now)?),
        false => None,
    };
    let mut claimed = Vec::new();
    let mut served: i64 = conn
        .query_row(sql::REMOTE_LAST_SERVED, [], |row| row.get(0))
        .map_err(db_err)?;
    while free > 0 {
        let queues: Vec<(String, String)> = conn
            .prepare_cached(sql::CLAIM_REMOTE_QUEUES)
            .and_then(|mut stmt| {
                stmt.query_map(
                    named_params! {
                        ":types": types,
                        ":per_user_max": params.per_user_max as i64,
                        ":limit": free as i64,
                    },
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?
                .collect()
            })
            .map_err(db_err)?;
        let before = claimed.len();
        let mut users_this_round = HashSet::new();
        for (job_type, user_id) in &queues {
            if free == 0 {
                break;
            }
            if !users_this_round.insert(user_id.as_str()) {
                continue;
            }
            let token = Uuid::new_v4();
            let (blocked_types, blocked_keys) = gate.as_ref().map_or(NONE_BLOCKED, Gate::blocked);
            let job = query_job(
                conn,
                sql::CLAIM_NEXT_REMOTE,
                named_params! {
                    ":job_type": job_type,
                    ":user_id": user_id,
                    ":worker_id": params.worker_id,
                    ":token": token.to_string(),
                    ":lease_until": lease_until,
                    ":now": now,
                    ":blocked_types": blocked_types,
                    ":blocked_keys": blocked_keys,
                },
            )?;
            if let (Some(gate), Some(job)) = (&mut gate, &job) {
                gate.started(conn, job)?;
            }
            served += 1;
            execute(
                conn,
                sql::MARK_REMOTE_SERVED,
                named_params! {":job_type": job_type, ":user_id": user_id, ":served": served},
            )?;
            if let Some(job) = job {
                claimed.push(claimed_under(job, token));
                free -= 1;
            }
        }
        if claimed.len() == before {
            break;
        }
    }
    Ok(claimed)
}

/// A new job's row as `insert_jobs.sql` reads it from its JSON array:
/// written from the job its store answers, so the two cannot differ.
#[derive(serde::Serialize)]
struct NewRow<'a> {
    id: JobId,
    job_type: &'a str,
    user_id: &'a str,
    status: &'static str,
    priority: i32,
    /// The parameters' JSON text (the column holds text).
    parameters: String,
    max_attempts: u32,
    timeout_seconds: Option<f64>,
    scheduled_for: Option<Millis>,
    /// The dependencies' ids as JSON text, if any.
    depends_on: Option<String>,
    waiting_dependencies: u32,
    cancelled_by: Option<JobId>,
    error: Option<&'a str>,
    completed_at: Option<Millis>,
    remote: bool,
    expires_at: Option<Millis>,
    concurrency_key: Option<&'a str>,
    schedule: Option<&'a str>,
    schedule_tick: Option<Millis>,
}

/// How a new job is admitted: pending, scheduled (for `run_at`, or waiting
/// for unfinished dependencies), or cancelled at once when a dependency
/// already failed or was cancelled. `earlier` holds the statuses of the
/// jobs inserted before it in the same call, which it may depend on.
fn admission(
    conn: &Connection,
    new: &NewJob,
    earlier: &HashMap<JobId, JobStatus>,
    now: Millis,
) -> StoreResult<Admission> {
    let mut waiting = 0u32;
    let mut settled_by: Option<(JobId, JobStatus)> = None;
    for dependency in &new.depends_on {
        let status = match earlier.get(dependency) {
            Some(status) => Some(*status),
            None => status_of(conn, *dependency)?,
        };
        match status {
            None => return Err(StoreError::UnknownDependency(*dependency)),
            Some(JobStatus::Completed) => {}
            Some(status @ (JobStatus::Failed | JobStatus::Cancelled)) => {
                settled_by.get_or_insert((*dependency, status));
            }
            Some(_) => waiting += 1,
        }
    }
    Ok(Admission {
        status: match settled_by {
            Some(_) => JobStatus::Cancelled,
            None if waiting > 0 || new.run_at.is_some_and(|at| at > now) => JobStatus::Scheduled,
            None => JobStatus::Pending,
        },
        waiting_dependencies: waiting,
        cancelled: settled_by.map(|(by, status)| (by, dependency_error(by, status))),
    })
}

impl<'a> NewRow<'a> {
    /// The row of `job`, a new job as its store answers it.
    fn of(job: &'a Job) -> NewRow<'a> {
        NewRow {
            id: job.id,
            job_type: &job.job_type,
            user_id: &job.user_id,
            status: job.status.as_str(),
            priority: job.priority,
            parameters: json_text(&job.parameters),
            max_attempts: job.max_attempts,
            timeout_seconds: job.timeout_seconds,
            scheduled_for: job.scheduled_for,
            depends_on: (!job.depends_on.is_empty())
                .then(|| serde_json::to_string(&job.depends_on).unwrap_or_default()),
            waiting_dependencies: job.waiting_dependencies,
            cancelled_by: job.cancelled_by,
            error: job.error.as_deref(),
            completed_at: job.completed_at,
            remote: job.remote,
            expires_at: job.expires_at,
            concurrency_key: job.concurrency_key.as_deref(),
            schedule: job.schedule.as_ref().map(|tick| tick.name.as_str()),
            schedule_tick: job.schedule.as_ref().map(|tick| tick.tick),
        }
    }
}

/// Inserts new jobs with their dependency edges, all or none (the caller's
/// write undoes every insert on an error), in two statements whatever
/// their number (a statement's journal, not a row, is what a write pays
/// most for); then checks each of their users against `quota`: a user
/// left with more queued jobs than it allows refuses the whole call. The
/// count is kept by triggers, so the check reads one row per user. The
/// jobs are answered from `jobs` and their admissions
/// ([`NewJob::stored`]), not read back.
pub(super) fn insert_jobs(
    conn: &Connection,
    jobs: Vec<NewJob>,
    quota: Option<u64>,
    now: Millis,
) -> StoreResult<Vec<Job>> {
    let mut statuses = HashMap::with_capacity(jobs.len());
    let mut stored = Vec::with_capacity(jobs.len());
    let mut edges = Vec::new();
    for new in jobs {
        let admitted = admission(conn, &new, &statuses, now)?;
        statuses.insert(new.id, admitted.status);
        edges.extend(new.depends_on.iter().map(|dep| [new.id, *dep]));
        stored.push(new.stored(now, admitted));
    }
    let rows: Vec<NewRow<'_>> = stored.iter().map(NewRow::of).collect();
    let rows = serde_json::to_string(&rows).unwrap_or_default();
    execute(
        conn,
        sql::INSERT_JOBS,
        named_params! {":jobs": rows, ":now": now},
    )?;
    if !edges.is_empty() {
        let edges = serde_json::to_string(&edges).unwrap_or_default();
        execute(
            conn,
            sql::INSERT_DEPENDENCIES,
            named_params! {":edges": edges},
        )?;
    }
    if let Some(limit) = quota {
        let users: HashSet<&str> = stored.iter().map(|job| job.user_id.as_str()).collect();
        for user_id in users {
            if queued_of(conn, user_id)? > limit {
                return Err(StoreError::QuotaExceeded {
                    user_id: user_id.to_owned(),
                    limit,
                });
            }
        }
    }
    Ok(stored)
}

/// A user's queued jobs (pending or scheduled), as the triggers keep them.
fn queued_of(conn: &Connection, user_id: &str) -> StoreResult<u64> {
    let queued: i64 = conn
        .prepare_cached(sql::QUEUED_OF_USER)
        .and_then(|mut stmt| stmt.query_row(named_params! {":user_id": user_id}, |row| row.get(0)))
        .map_err(db_err)?;
    Ok(u64::try_from(queued).unwrap_or(0))
}

/// The error of a job cancelled because of `dependency`.
fn dependency_error(dependency: JobId, status: JobStatus) -> String {
    match status {
        JobStatus::Failed => format!("dependency {dependency} failed"),
        _ => format!("dependency {dependency} was cancelled"),
    }
}

/// Ends one attempt under its claim (see `sql/finish.sql`).
pub(super) fn finish_in(
    conn: &Connection,
    claim: ClaimRef,
    outcome: &Outcome,
    now: Millis,
) -> StoreResult<Job> {
    let (status, result, error, scheduled_for, completed_at) = match outcome {
        Outcome::Completed { result } => (
            JobStatus::Completed,
            Some(json_text(result)),
            None,
            None,
            Some(now),
        ),
        Outcome::Failed {
            error,
            retry_at: Some(at),
        } => (
            JobStatus::Scheduled,
            None,
            Some(error.as_str()),
            Some(*at),
            None,
        ),
        Outcome::Failed {
            error,
            retry_at: None,
        } => (
            JobStatus::Failed,
            None,
            Some(error.as_str()),
            None,
            Some(now),
        ),
    };
    query_job(
        conn,
        sql::FINISH,
        named_params! {
            ":id": claim.job_id.to_string(),
            ":token": claim.token.to_string(),
            ":status": status.as_str(),
            ":result": result,
            ":error": error,
            ":scheduled_for": scheduled_for,
            ":completed_at": completed_at,
            ":now": now,
        },
    )?
    .ok_or(StoreError::ClaimLost(claim.job_id))
}

/// A page of the listing (`limit` jobs at most, newest first).
pub(super) fn list_in(conn: &Connection, query: &ListQuery) -> StoreResult<ListPage> {
    let mut stmt = conn.prepare_cached(sql::LIST_JOBS).map_err(db_err)?;
    let columns = JobColumns::of(&stmt).map_err(db_err)?;
    let mut rows = stmt
        .query(named_params! {
            ":status": query.status.map(JobStatus::as_str),
            ":user_id": query.user_id,
            ":job_type": query.job_type,
            ":before": query.before.map(|id| id.to_string()),
            ":limit": query.limit as i64,
            ":with_parameters": query.with_parameters,
            ":with_result": query.with_result,
        })
        .map_err(db_err)?;
    let mut jobs = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.next().map_err(db_err)? {
        bytes += stored_len(row, columns.parameters)?
            + stored_len(row, columns.result)?
            + stored_len(row, columns.error)?;
        if !jobs.is_empty() && bytes > query.max_bytes {
            // Cut short: the next page starts at the job left out.
            let next_cursor = jobs.last().map(|job: &Job| job.id);
            return Ok(ListPage { jobs, next_cursor });
        }
        jobs.push(job_from_row(row, &columns).map_err(db_err)?);
    }
    let next_cursor = (jobs.len() == query.limit)
        .then(|| jobs.last().map(|job| job.id))
        .flatten();
    Ok(ListPage { jobs, next_cursor })
}

/// Bytes of a text column as stored (0 when null), read without copying.
fn stored_len(row: &rusqlite::Row<'_>, column: usize) -> StoreResult<usize> {
    let value = row.get_ref(column).map_err(db_err)?;
    Ok(value
        .as_bytes_or_null()
        .map_err(|e| db_err(e.into()))?
        .map_or(0, <[u8]>::len))
}

/// Which of `ids` have no row.
pub(super) fn missing_in(conn: &Connection, ids: &[JobId]) -> StoreResult<Vec<JobId>> {
    let mut stmt = conn.prepare_cached(sql::JOB_EXISTS).map_err(db_err)?;
    let mut missing = Vec::new();
    for id in ids {
        if !stmt
            .exists(named_params! {":id": id.to_string()})
            .map_err(db_err)?
        {
            missing.push(*id);
        }
    }
    Ok(missing)
}

/// Records progress under the claim.
pub(super) fn progress_in(
    conn: &Connection,
    claim: ClaimRef,
    progress: Progress,
    now: Millis,
) -> StoreResult<Job> {
    query_job(
        conn,
        sql::REPORT_PROGRESS,
        named_params! {
            ":id": claim.job_id.to_string(),
            ":token": claim.token.to_string(),
            ":progress": progress.fraction,
            ":items_processed": progress.items_processed.map(|n| n as i64),
            ":total_items": progress.total_items.map(|n| n as i64),
            ":now": now,
        },
    )?
    .ok_or(StoreError::ClaimLost(claim.job_id))
}

/// Gives claimed jobs back to their queue; returns those released.
pub(super) fn release_in(
    conn: &Connection,
    claims: &[ClaimRef],
    now: Millis,
) -> StoreResult<Vec<Job>> {
    let mut released = Vec::new();
    for claim in claims {
        released.extend(query_job(
            conn,
            sql::RELEASE,
            named_params! {
                ":id": claim.job_id.to_string(),
                ":token": claim.token.to_string(),
                ":now": now,
            },
        )?);
    }
    Ok(released)
}

/// Cancels a job that is not terminal.
pub(super) fn cancel_in(conn: &Connection, id: JobId, now: Millis) -> StoreResult<Job> {
    query_job(
        conn,
        sql::CANCEL,
        named_params! {":id": id.to_string(), ":now": now, ":reason": None::<String>},
    )?
    .ok_or_else(|| not_applicable(conn, id))
}

/// Puts a failed or cancelled job back to pending, unless its user already
/// has `quota` queued jobs.
pub(super) fn restart_in(
    conn: &Connection,
    id: JobId,
    parameters: Option<&Value>,
    quota: Option<u64>,
    now: Millis,
) -> StoreResult<Job> {
    if let Some(limit) = quota {
        check_restart_quota(conn, id, limit)?;
    }
    let parameters = parameters.map(json_text);
    query_job(
        conn,
        sql::RESTART,
        named_params! {":id": id.to_string(), ":now": now, ":parameters": parameters},
    )?
    .ok_or_else(|| not_applicable(conn, id))?;
    // The status change separately, so the revival trigger sees the job's
    // settled dependency count.
    query_job(
        conn,
        sql::RESTART_STATUS,
        named_params! {":id": id.to_string()},
    )?
    .ok_or(StoreError::NotFound(id))
}

/// Refuses the restart of job `id` when its user already has `limit`
/// queued jobs; a job that does not exist or cannot restart is left to the
/// restart itself to report.
fn check_restart_quota(conn: &Connection, id: JobId, limit: u64) -> StoreResult<()> {
    let user_id: Option<String> = conn
        .prepare_cached(sql::RESTARTABLE_USER)
        .and_then(|mut stmt| {
            stmt.query_row(named_params! {":id": id.to_string()}, |row| row.get(0))
                .optional()
        })
        .map_err(db_err)?;
    match user_id {
        Some(user_id) if queued_of(conn, &user_id)? >= limit => {
            Err(StoreError::QuotaExceeded { user_id, limit })
        }
        _ => Ok(()),
    }
}

/// Registers or refreshes a worker and extends its leases; returns the held
/// jobs whose claim is gone.
pub(super) fn heartbeat_in(
    conn: &Connection,
    worker: &WorkerInfo,
    held: &[ClaimRef],
    lease_until: Millis,
    now: Millis,
) -> StoreResult<Vec<JobId>> {
    execute(
        conn,
        sql::UPSERT_WORKER,
        named_params! {
            ":worker_id": worker.worker_id,
            ":host": worker.host,
            ":pid": worker.pid,
            ":started_at": worker.started_at,
            ":concurrency": worker.concurrency as i64,
            ":now": now,
            ":serves": serves_text(&worker.serves),
        },
    )?;
    let mut lost = Vec::new();
    for claim in held {
        let renewed = execute(
            conn,
            sql::EXTEND_LEASE,
            named_params! {
                ":id": claim.job_id.to_string(),
                ":token": claim.token.to_string(),
                ":lease_until": lease_until,
            },
        )?;
        if renewed == 0 {
            lost.push(claim.job_id);
        }
    }
    Ok(lost)
}

/// Removes a worker's registration.
pub(super) fn unregister_in(conn: &Connection, worker_id: &str) -> StoreResult<()> {
    execute(
        conn,
        sql::DELETE_WORKER,
        named_params! {":worker_id": worker_id},
    )
    .map(drop)
}

/// Cancels the jobs past their deadline that never started, with the
/// error `expired`; returns them (their dependents follow by trigger).
pub(super) fn expire_in(conn: &Connection, now: Millis) -> StoreResult<Vec<Job>> {
    query_jobs(conn, sql::EXPIRE_DUE, named_params! {":now": now})
}

/// The earliest deadline of a job that may still expire.
pub(super) fn next_expiry_in(conn: &Connection) -> StoreResult<Option<Millis>> {
    conn.prepare_cached(sql::NEXT_EXPIRY)
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)).optional())
        .map_err(db_err)
}

/// Makes due scheduled jobs pending; returns them.
pub(super) fn promote_in(conn: &Connection, now: Millis) -> StoreResult<Vec<Job>> {
    query_jobs(conn, sql::PROMOTE_DUE, named_params! {":now": now})
}

/// Recovers expired leases and the jobs of dead workers, and removes stale
/// registrations; returns the report and the jobs changed.
pub(super) fn recover_in(
    conn: &Connection,
    params: &RecoverParams,
    now: Millis,
) -> StoreResult<(RecoverReport, Vec<Job>)> {
    for worker_id in &params.dead_workers {
        execute(
            conn,
            sql::EXPIRE_WORKER_LEASES,
            named_params! {":worker_id": worker_id},
        )?;
        execute(
            conn,
            sql::DELETE_WORKER,
            named_params! {":worker_id": worker_id},
        )?;
    }
    let expired: Vec<(String, u32)> = conn
        .prepare_cached(sql::SELECT_EXPIRED)
        .and_then(|mut stmt| {
            stmt.query_map(named_params! {":now": now}, |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect()
        })
        .map_err(db_err)?;
    let mut report = RecoverReport::default();
    let mut changed = Vec::new();
    for (id, interruptions) in expired {
        let job = if interruptions >= params.max_interruptions {
            query_job(
                conn,
                sql::FAIL_WORKER_LOST,
                named_params! {
                    ":id": id,
                    ":now": now,
                    ":error": format!(
                        "worker lost: the job's worker stopped responding {} times",
                        interruptions + 1
                    ),
                },
            )?
        } else {
            query_job(
                conn,
                sql::REQUEUE_INTERRUPTED,
                named_params! {":id": id, ":now": now},
            )?
        };
        if let Some(job) = job {
            match job.status {
                JobStatus::Failed => report.failed.push(job.id),
                _ => report.requeued.push(job.id),
            }
            changed.push(job);
        }
    }
    report.stale_workers_removed = execute(
        conn,
        sql::DELETE_STALE_WORKERS,
        named_params! {":before": now.saturating_sub(duration_millis(params.stale_worker_after))},
    )?;
    Ok((report, changed))
}

/// Deletes one bounded batch of terminal jobs past retention; returns how
/// many.
pub(super) fn delete_expired_in(
    conn: &Connection,
    completed_before: Millis,
    failed_before: Millis,
) -> StoreResult<usize> {
    execute(
        conn,
        sql::DELETE_EXPIRED_JOBS,
        named_params! {
            ":completed_before": completed_before,
            ":failed_before": failed_before,
        },
    )
}

/// Ends a cleanup pass: forgets idle users and records the pass.
pub(super) fn end_cleanup_in(conn: &Connection, now: Millis) -> StoreResult<()> {
    execute(conn, sql::FORGET_IDLE_USERS, [])?;
    execute(conn, sql::FORGET_IDLE_REMOTE_QUEUES, [])?;
    execute(
        conn,
        sql::SET_META,
        named_params! {":key": LAST_CLEANUP_KEY, ":value": now},
    )
    .map(drop)
}

/// Records the time of the latest write probe (`/health`): a one-row
/// write, so it fails when the file cannot grow.
pub(super) fn probe_write_in(conn: &Connection, now: Millis) -> StoreResult<()> {
    execute(
        conn,
        sql::SET_META,
        named_params! {":key": "write_probe", ":value": now},
    )
    .map(drop)
}

/// Counts per status, workers active since `active_since` and stale, and
/// the last cleanup.
pub(super) fn stats_in(conn: &Connection, active_since: Millis) -> StoreResult<StoreStats> {
    let mut counts: Vec<(JobStatus, u64)> =
        JobStatus::ALL.iter().map(|status| (*status, 0)).collect();
    let rows: Vec<(String, i64)> = conn
        .prepare_cached(sql::STATUS_COUNTS)
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(db_err)?;
    for (status, n) in rows {
        if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
            entry.1 = n.max(0) as u64;
        }
    }
    let (active, stale): (i64, i64) = conn
        .query_row(
            sql::COUNT_WORKERS,
            named_params! {":active_since": active_since},
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(db_err)?;
    let last_cleanup = conn
        .query_row(
            sql::GET_META,
            named_params! {":key": LAST_CLEANUP_KEY},
            |row| row.get(0),
        )
        .ok();
    Ok(StoreStats {
        counts,
        active_workers: active.max(0) as usize,
        stale_workers: stale.max(0) as usize,
        last_cleanup,
    })
}

/// The worker registry.
pub(super) fn workers_in(conn: &Connection) -> StoreResult<Vec<WorkerRecord>> {
    conn.prepare_cached(sql::SELECT_WORKERS)
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                let serves: Option<String> = row.get(6)?;
                let jobs: Option<String> = row.get(7)?;
                Ok(WorkerRecord {
                    info: WorkerInfo {
                        worker_id: row.get(0)?,
                        host: row.get(1)?,
                        pid: row.get(2)?,
                        started_at: row.get(3)?,
                        concurrency: row.get::<_, i64>(4)?.max(0) as usize,
                        serves: serves_from_text(serves.as_deref())
                            .map_err(|e| corrupt_column(6, e))?,
                    },
                    last_heartbeat: row.get(5)?,
                    running_jobs: jobs
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|id| id.parse().ok())
                        .collect(),
                })
            })?
            .collect()
        })
        .map_err(db_err)
}

/// What a worker serves as the `workers.serves` column holds it: NULL for
/// a built-in worker, else the JSON array of its remote types.
fn serves_text(serves: &Serves) -> Option<String> {
    match serves {
        Serves::BuiltIn => None,
        Serves::Remote(types) => Some(serde_json::Value::from(types.clone()).to_string()),
    }
}

/// The inverse of [`serves_text`].
fn serves_from_text(text: Option<&str>) -> serde_json::Result<Serves> {
    Ok(match text {
        None => Serves::BuiltIn,
        Some(types) => Serves::Remote(serde_json::from_str(types)?),
    })
}

/// A stored value of column `index` that cannot be decoded.
fn corrupt_column(
    index: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
}

/// The earliest due time of a scheduled job.
pub(super) fn next_due_in(conn: &Connection) -> StoreResult<Option<Millis>> {
    conn.prepare_cached(sql::NEXT_DUE)
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)).optional())
        .map_err(db_err)
}
