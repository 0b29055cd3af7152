//! The embedded store: one SQLite file in WAL mode. Writes go through a
//! single writer thread with group commit ([`writer`]); reads use a small
//! pool of read connections, which WAL lets run beside the writer. Counts
//! per status and per user are kept by triggers (`sql/schema.sql`), so
//! stats and fair claiming never scan the jobs table.
//!
//! Several processes may share one file (`jobd serve --workers 0` beside
//! `jobd worker`): each learns of the others' writes by tailing the
//! `job_changes` log ([`tail`]).

mod checkpoint;
mod rows;
mod sql;
mod tail;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, named_params};
use serde_json::Value;
use uuid::Uuid;

use self::rows::{db_err, json_text, query_job, query_jobs, select_job, status_of};
use self::writer::Writer;
use crate::config::Synchronous;
use crate::events::{EventBus, JobWatch};
use crate::model::{Job, JobId, JobStatus, Millis, NewJob, Progress, now_millis};
use crate::store::{
    ClaimParams, ClaimRef, Claimed, CleanupParams, CleanupReport, Exchanged, Finish,
    FinishedTotals, ListPage, ListQuery, Outcome, RecoverParams, RecoverReport, Store, StoreError,
    StoreResult, StoreStats, WorkerInfo, WorkerRecord,
};

/// The `meta` key under which the last cleanup time is kept.
const LAST_CLEANUP_KEY: &str = "last_cleanup";

/// The embedded SQLite store.
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<ReaderPool>,
    bus: EventBus,
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/jobd.sqlite3`, applies the
    /// schema and starts the writer thread and the change tailer.
    pub async fn open(
        data_dir: &Path,
        synchronous: Synchronous,
        bus: EventBus,
    ) -> StoreResult<Arc<SqliteStore>> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join("jobd.sqlite3");
        let mut writer_conn = open_connection(&path, synchronous).map_err(db_err)?;
        migrate(&mut writer_conn).map_err(db_err)?;
        // The checkpointer thread copies the log into the file, the writer
        // only its last pages (see writer::run).
        writer_conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(db_err)?;
        let writer = Writer::start(writer_conn)
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer: {e}")))?;
        // Opened up front: opening one costs milliseconds, which the first
        // requests of a busy start would otherwise wait for.
        let idle = (0..WARM_READERS)
            .map(|_| open_connection(&path, Synchronous::Normal))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        let readers = Arc::new(ReaderPool {
            path: path.clone(),
            idle: Mutex::new(idle),
        });
        let store = Arc::new(SqliteStore {
            writer,
            readers,
            bus: bus.clone(),
        });
        let tail_conn = open_connection(&path, synchronous).map_err(db_err)?;
        tail::spawn(tail_conn, Arc::downgrade(&store), bus);
        let checkpoint_conn = open_connection(&path, synchronous).map_err(db_err)?;
        checkpoint::spawn(checkpoint_conn, Arc::downgrade(&store))
            .map_err(|e| StoreError::Unavailable(format!("cannot start checkpointer: {e}")))?;
        Ok(store)
    }

    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(work))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    fn publish_all(&self, jobs: &[Job]) {
        for job in jobs {
            self.bus.publish(job);
        }
    }
}

/// Schema versions, applied in order to a file whose `user_version` is
/// below theirs.
const MIGRATIONS: [&str; 4] = [
    sql::SCHEMA,
    sql::DEPENDENCIES,
    sql::DROP_RUNNING_INDEXES,
    sql::RETIRED,
];

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (version, migration) in (1i64..).zip(MIGRATIONS) {
        if version > current {
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", version)?;
        }
    }
    tx.commit()
}

/// Tries a connection makes for another process's write lock: about 5 s.
const LOCK_TRIES: u64 = 5_000;

/// Busy handler: retries every 100 µs, growing to 1 ms. SQLite's own waits
/// grow to 100 ms, so a process whose write queues behind another's busy
/// writer would answer in hundreds of milliseconds.
fn wait_for_lock(attempt: i32) -> bool {
    let attempt = u64::try_from(attempt).unwrap_or(0);
    if attempt >= LOCK_TRIES {
        return false;
    }
    std::thread::sleep(Duration::from_micros(100 * (attempt + 1).min(10)));
    true
}

fn open_connection(path: &Path, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(wait_for_lock))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // Dependency resolution cascades through triggers (sql/dependencies.sql).
    conn.pragma_update(None, "recursive_triggers", "ON")?;
    // Savepoint journals in memory: the writer opens one per write, and a
    // temporary file each time would dominate a small write's cost.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Keep each statement's plan once prepared. Without this, binding new
    // values (a LIMIT, a value a partial index's condition mentions) makes
    // SQLite re-prepare the statement, triggers and all, which profiling
    // showed as 40% of the writer's time.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Read connections, opened on demand and reused. WAL readers never block
/// the writer nor each other.
struct ReaderPool {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `work` on an idle connection, opening one if none is; it may
    /// wait for a lock, so call it on a blocking thread.
    fn with<T>(&self, work: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.idle().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path, Synchronous::Normal).map_err(db_err)?,
        };
        let result = work(&conn);
        self.idle().push(conn);
        result
    }

    /// Runs `work` at once on an idle connection that does not wait for
    /// locks: for a short read on an async thread. `None` when no
    /// connection is idle or the file is locked; then read on a blocking
    /// thread instead.
    fn try_now<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<StoreResult<T>> {
        let mut conn = self.idle().pop()?;
        let result = match conn.busy_handler(None::<fn(i32) -> bool>) {
            Ok(()) => work(&conn),
            Err(e) => Err(e),
        };
        // Give the connection its waiting back for blocking reads.
        let restored = conn.busy_handler(Some(wait_for_lock));
        let result = match (result, restored) {
            (Err(rusqlite::Error::SqliteFailure(e, _)), _)
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                None
            }
            (result, Ok(())) => Some(result.map_err(db_err)),
            // A connection that cannot wait is not put back.
            (_, Err(_)) => return None,
        };
        self.idle().push(conn);
        result
    }
}

/// Explains why a conditional update on job `id` matched no row.
fn not_applicable(conn: &Connection, id: JobId) -> StoreError {
    match status_of(conn, id) {
        Ok(Some(current)) => StoreError::Conflict { id, current },
        Ok(None) => StoreError::NotFound(id),
        Err(e) => e,
    }
}

fn claim_in(conn: &Connection, params: &ClaimParams) -> StoreResult<(Vec<Claimed>, Vec<Job>)> {
    let promoted = query_jobs(conn, sql::PROMOTE_DUE, named_params! {":now": params.now})?;
    let running: i64 = conn
        .query_row(sql::RUNNING_TOTAL, [], |row| row.get(0))
        .map_err(db_err)?;
    let mut free = params
        .max_jobs
        .min(params.global_max.saturating_sub(running.max(0) as usize));
    let mut claimed = Vec::new();
    let mut served: i64 = conn
        .query_row(sql::LAST_SERVED, [], |row| row.get(0))
        .map_err(db_err)?;
    // Each round gives every user with room one job, least recently served
    // first, so a user with a long queue never delays another by more than
    // one round.
    while free > 0 {
        let users: Vec<String> = conn
            .prepare_cached(sql::CLAIM_USERS)
            .and_then(|mut stmt| {
                stmt.query_map(
                    named_params! {":per_user_max": params.per_user_max as i64, ":limit": free as i64},
                    |row| row.get(0),
                )?
                .collect()
            })
            .map_err(db_err)?;
        let before = claimed.len();
        for user_id in users.iter().take(free) {
            let token = Uuid::new_v4();
            let job = query_job(
                conn,
                sql::CLAIM_NEXT_OF_USER,
                named_params! {
                    ":user_id": user_id,
                    ":worker_id": params.worker_id,
                    ":token": token.to_string(),
                    ":lease_until": params.lease_until,
                    ":now": params.now,
                },
            )?;
            served += 1;
            conn.prepare_cached(sql::MARK_USER_SERVED)
                .and_then(|mut stmt| {
                    stmt.execute(named_params! {":user_id": user_id, ":served": served})
                })
                .map_err(db_err)?;
            if let Some(job) = job {
                let claim = ClaimRef {
                    job_id: job.id,
                    token,
                };
                claimed.push(Claimed { job, claim });
                free -= 1;
            }
        }
        if claimed.len() == before {
            break;
        }
    }
    Ok((claimed, promoted))
}

/// Inserts a new job with its dependency edges. It is pending, scheduled
/// (for `run_at`, or waiting for unfinished dependencies), or cancelled at
/// once when a dependency already failed or was cancelled.
fn insert_job(conn: &Connection, new: &NewJob, now: Millis) -> StoreResult<Job> {
    let id = new.id;
    let mut waiting = 0u32;
    let mut settled_by: Option<(JobId, JobStatus)> = None;
    for dependency in &new.depends_on {
        match status_of(conn, *dependency)? {
            None => return Err(StoreError::UnknownDependency(*dependency)),
            Some(JobStatus::Completed) => {}
            Some(status @ (JobStatus::Failed | JobStatus::Cancelled)) => {
                settled_by.get_or_insert((*dependency, status));
            }
            Some(_) => waiting += 1,
        }
    }
    let scheduled_for = new.run_at.filter(|at| *at > now);
    let (status, error) = match settled_by {
        Some((by, status)) => (JobStatus::Cancelled, Some(dependency_error(by, status))),
        None if waiting > 0 || scheduled_for.is_some() => (JobStatus::Scheduled, None),
        None => (JobStatus::Pending, None),
    };
    let depends_on = (!new.depends_on.is_empty())
        .then(|| serde_json::to_string(&new.depends_on).unwrap_or_default());
    let job = query_job(
        conn,
        sql::INSERT_JOB,
        named_params! {
            ":id": id.to_string(),
            ":job_type": new.job_type,
            ":user_id": new.user_id,
            ":status": status.as_str(),
            ":priority": new.priority,
            ":parameters": json_text(&new.parameters),
            ":max_attempts": new.max_attempts,
            ":timeout_seconds": new.timeout_seconds,
            ":now": now,
            ":scheduled_for": scheduled_for,
            ":depends_on": depends_on,
            ":waiting_dependencies": waiting,
            ":cancelled_by": settled_by.map(|(by, _)| by.to_string()),
            ":error": error,
            ":completed_at": settled_by.map(|_| now),
        },
    )?
    .ok_or_else(|| StoreError::Unavailable("insert returned no row".into()))?;
    for dependency in &new.depends_on {
        execute(
            conn,
            sql::INSERT_DEPENDENCY,
            named_params! {":job_id": id.to_string(), ":depends_on_id": dependency.to_string()},
        )?;
    }
    Ok(job)
}

/// The error of a job cancelled because of `dependency`.
pub fn dependency_error(dependency: JobId, status: JobStatus) -> String {
    match status {
        JobStatus::Failed => format!("dependency {dependency} failed"),
        _ => format!("dependency {dependency} was cancelled"),
    }
}

/// Ends one attempt under its claim (see `sql/finish.sql`).
fn finish_in(
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

/// Read connections opened with the store; more open on demand.
const WARM_READERS: usize = 8;

/// Attempts ended, or jobs claimed, per write of a worker's batch: each
/// write stays short, so a request's write never waits long behind one.
const WRITE_CHUNK: usize = 16;

/// Change-log entries deleted per write when trimming the log.
const PRUNE_CHUNK: usize = 2_000;

fn execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(db_err)
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err))
            .await?;
        // A read alone would not notice a stopped writer.
        self.writer.write(|_| Ok(())).await
    }

    async fn submit_all(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Job>> {
        let now = now_millis();
        // One write, one savepoint: an error undoes every insert of the call.
        let stored = self
            .writer
            .write(move |conn| {
                jobs.iter()
                    .map(|new| insert_job(conn, new, now))
                    .collect::<StoreResult<Vec<Job>>>()
            })
            .await?;
        self.publish_all(&stored);
        if stored.iter().any(|job| job.status == JobStatus::Pending) {
            self.bus.notify_work();
        }
        Ok(stored)
    }

    async fn watch(&self, id: JobId) -> StoreResult<(JobWatch, Job)> {
        // Every change, by any process, reaches the bus (the change log is
        // tailed): watch, then read.
        let watch = self.bus.watch(id);
        Ok((watch, self.get(id).await?))
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        // A lookup by primary key takes tens of microseconds: run here, not
        // on the blocking pool (a thread hand-off costs as much and, on a
        // busy machine, waits for a core), unless that would mean opening
        // a connection or waiting for a lock on this async thread.
        let found = match self.readers.try_now(|conn| select_job(conn, id)) {
            Some(found) => found?,
            None => {
                self.read(move |conn| select_job(conn, id).map_err(db_err))
                    .await?
            }
        };
        found.ok_or(StoreError::NotFound(id))
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<ListPage> {
        let query = query.clone();
        let limit = query.limit;
        let jobs = self
            .read(move |conn| {
                query_jobs(
                    conn,
                    sql::LIST_JOBS,
                    named_params! {
                        ":status": query.status.map(JobStatus::as_str),
                        ":user_id": query.user_id,
                        ":job_type": query.job_type,
                        ":before": query.before.map(|id| id.to_string()),
                        ":limit": query.limit as i64,
                    },
                )
            })
            .await?;
        let next_cursor = (jobs.len() == limit)
            .then(|| jobs.last().map(|j| j.id))
            .flatten();
        Ok(ListPage { jobs, next_cursor })
    }

    async fn claim(&self, params: &ClaimParams) -> StoreResult<Vec<Claimed>> {
        let params = params.clone();
        let (claimed, promoted) = self
            .writer
            .write_background(move |conn| claim_in(conn, &params))
            .await?;
        self.publish_all(&promoted);
        for claimed in &claimed {
            self.bus.publish(&claimed.job);
        }
        Ok(claimed)
    }

    async fn report_progress(&self, claim: ClaimRef, progress: Progress) -> StoreResult<Job> {
        let progress = progress.clamped();
        let job = self
            .writer
            .write_background(move |conn| {
                query_job(
                    conn,
                    sql::REPORT_PROGRESS,
                    named_params! {
                        ":id": claim.job_id.to_string(),
                        ":token": claim.token.to_string(),
                        ":progress": progress.fraction,
                        ":items_processed": progress.items_processed.map(|n| n as i64),
                        ":total_items": progress.total_items.map(|n| n as i64),
                        ":now": now_millis(),
                    },
                )?
                .ok_or(StoreError::ClaimLost(claim.job_id))
            })
            .await?;
        self.bus.publish(&job);
        Ok(job)
    }

    async fn finish(&self, claim: ClaimRef, outcome: Outcome, now: Millis) -> StoreResult<Job> {
        let job = self
            .writer
            .write_background(move |conn| finish_in(conn, claim, &outcome, now))
            .await?;
        self.bus.publish(&job);
        Ok(job)
    }

    async fn finish_and_claim(
        &self,
        items: &[Finish],
        now: Millis,
        refill: Option<&ClaimParams>,
    ) -> StoreResult<Exchanged> {
        let items: Vec<(ClaimRef, Outcome)> = items
            .iter()
            .map(|item| (item.claim, item.outcome.clone()))
            .collect();
        // Short writes queued together: outcomes, then claims, in chunks.
        // They run back to back, yet an API write queued meanwhile waits
        // for one chunk at most.
        let finishing = futures::future::join_all(items.chunks(WRITE_CHUNK).map(|chunk| {
            let chunk = chunk.to_vec();
            let count = chunk.len();
            async move {
                self.writer
                    .write_background(move |conn| {
                        Ok(chunk
                            .iter()
                            .map(|(claim, outcome)| finish_in(conn, *claim, outcome, now))
                            .collect::<Vec<_>>())
                    })
                    .await
                    // A failed write fails each outcome (the worker retries
                    // them); the jobs claimed beside it are still handed out.
                    .unwrap_or_else(|e| {
                        (0..count)
                            .map(|_| Err(StoreError::Unavailable(e.to_string())))
                            .collect()
                    })
            }
        }));
        let wanted = refill.map_or(0, |params| params.max_jobs);
        let claiming =
            futures::future::join_all((0..wanted).step_by(WRITE_CHUNK).filter_map(|first| {
                let mut params = refill?.clone();
                params.max_jobs = WRITE_CHUNK.min(wanted - first);
                Some(async move { self.claim(&params).await })
            }));
        let (finished, claimed) = tokio::join!(finishing, claiming);
        let finished: Vec<_> = finished.into_iter().flatten().collect();
        for job in finished.iter().flatten() {
            self.bus.publish(job);
        }
        // The outcomes are recorded whatever the claims did: a failed claim
        // only means fewer replacements this time.
        let mut jobs = Vec::new();
        for result in claimed {
            match result {
                Ok(claimed) => jobs.extend(claimed),
                Err(e) => tracing::warn!(error = %e, "claim beside recording outcomes failed"),
            }
        }
        Ok(Exchanged {
            finished,
            claimed: jobs,
        })
    }

    async fn release(&self, claims: &[ClaimRef], now: Millis) -> StoreResult<()> {
        let claims = claims.to_vec();
        let released = self
            .writer
            .write_background(move |conn| {
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
            })
            .await?;
        self.publish_all(&released);
        self.bus.notify_work();
        Ok(())
    }

    async fn cancel(&self, id: JobId, now: Millis) -> StoreResult<Job> {
        let job = self
            .writer
            .write(move |conn| {
                query_job(
                    conn,
                    sql::CANCEL,
                    named_params! {":id": id.to_string(), ":now": now, ":reason": None::<String>},
                )?
                .ok_or_else(|| not_applicable(conn, id))
            })
            .await?;
        self.bus.publish(&job);
        Ok(job)
    }

    async fn restart(&self, id: JobId, parameters: Option<Value>, now: Millis) -> StoreResult<Job> {
        let parameters = parameters.as_ref().map(json_text);
        let job = self
            .writer
            .write(move |conn| {
                query_job(
                    conn,
                    sql::RESTART,
                    named_params! {":id": id.to_string(), ":now": now, ":parameters": parameters},
                )?
                .ok_or_else(|| not_applicable(conn, id))?;
                // The status change separately, so the revival trigger sees
                // the job's settled dependency count.
                query_job(
                    conn,
                    sql::RESTART_STATUS,
                    named_params! {":id": id.to_string()},
                )?
                .ok_or(StoreError::NotFound(id))
            })
            .await?;
        self.bus.publish(&job);
        self.bus.notify_work();
        Ok(job)
    }

    async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        held: &[ClaimRef],
        lease_until: Millis,
        now: Millis,
    ) -> StoreResult<Vec<JobId>> {
        let worker = worker.clone();
        let held = held.to_vec();
        self.writer
            .write_background(move |conn| {
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
            })
            .await
    }

    async fn unregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        let worker_id = worker_id.to_owned();
        self.writer
            .write_background(move |conn| {
                execute(
                    conn,
                    sql::DELETE_WORKER,
                    named_params! {":worker_id": worker_id},
                )
                .map(drop)
            })
            .await
    }

    async fn promote_due(&self, now: Millis) -> StoreResult<usize> {
        // The scheduler calls this every second: also the moment to keep
        // the change log short (it grows with every write), in chunks so
        // that API writes never queue behind one long delete.
        loop {
            let pruned = self
                .writer
                .write_background(|conn| {
                    execute(
                        conn,
                        sql::PRUNE_CHANGES,
                        named_params! {":chunk": PRUNE_CHUNK as i64},
                    )
                })
                .await?;
            if pruned < PRUNE_CHUNK {
                break;
            }
            // Let other processes sharing the file take the write lock.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let promoted = self
            .writer
            .write_background(move |conn| {
                query_jobs(conn, sql::PROMOTE_DUE, named_params! {":now": now})
            })
            .await?;
        self.publish_all(&promoted);
        if !promoted.is_empty() {
            self.bus.notify_work();
        }
        Ok(promoted.len())
    }

    async fn recover_expired(&self, params: &RecoverParams) -> StoreResult<RecoverReport> {
        let params = params.clone();
        let (report, changed) = self
            .writer
            .write_background(move |conn| {
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
                        stmt.query_map(named_params! {":now": params.now}, |row| {
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
                                ":now": params.now,
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
                            named_params! {":id": id, ":now": params.now},
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
                    named_params! {":before": params.stale_workers_before},
                )?;
                Ok((report, changed))
            })
            .await?;
        self.publish_all(&changed);
        if !report.requeued.is_empty() {
            self.bus.notify_work();
        }
        Ok(report)
    }

    async fn cleanup(&self, params: &CleanupParams) -> StoreResult<CleanupReport> {
        let mut report = CleanupReport::default();
        // One bounded batch per write, so claims interleave with a long purge.
        loop {
            let (completed_before, failed_before) = (params.completed_before, params.failed_before);
            let deleted = self
                .writer
                .write_background(move |conn| {
                    execute(
                        conn,
                        sql::DELETE_EXPIRED_JOBS,
                        named_params! {
                            ":completed_before": completed_before,
                            ":failed_before": failed_before,
                        },
                    )
                })
                .await?;
            report.jobs_deleted += deleted;
            if deleted == 0 {
                break;
            }
        }
        // Orphaned processing locks cannot exist here: the schema's CHECK
        // ties the lock to the running status, and every transition out of
        // running clears it in the same statement. `locks_cleared` stays 0.
        let now = params.now;
        self.writer
            .write_background(move |conn| {
                execute(conn, sql::FORGET_IDLE_USERS, [])?;
                execute(
                    conn,
                    sql::SET_META,
                    named_params! {":key": LAST_CLEANUP_KEY, ":value": now},
                )
                .map(drop)
            })
            .await?;
        Ok(report)
    }

    async fn stats(&self, active_since: Millis) -> StoreResult<StoreStats> {
        self.read(move |conn| {
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
        })
        .await
    }

    async fn finished_totals(&self) -> StoreResult<FinishedTotals> {
        self.read(|conn| {
            let rows: Vec<(String, i64)> = conn
                .prepare_cached(sql::FINISHED_TOTALS)
                .and_then(|mut stmt| {
                    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect()
                })
                .map_err(db_err)?;
            let total = |status: &str| {
                rows.iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| (*n).max(0) as u64)
            };
            Ok(FinishedTotals {
                completed: total("completed"),
                failed: total("failed"),
                cancelled: total("cancelled"),
            })
        })
        .await
    }

    async fn workers(&self) -> StoreResult<Vec<WorkerRecord>> {
        self.read(|conn| {
            conn.prepare_cached(sql::SELECT_WORKERS)
                .and_then(|mut stmt| {
                    stmt.query_map([], |row| {
                        let jobs: Option<String> = row.get(6)?;
                        Ok(WorkerRecord {
                            info: WorkerInfo {
                                worker_id: row.get(0)?,
                                host: row.get(1)?,
                                pid: row.get(2)?,
                                started_at: row.get(3)?,
                                concurrency: row.get::<_, i64>(4)?.max(0) as usize,
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
        })
        .await
    }

    async fn next_due(&self) -> StoreResult<Option<Millis>> {
        self.read(|conn| {
            conn.query_row(sql::NEXT_DUE, [], |row| row.get(0))
                .map_err(db_err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read on an async thread never opens a connection there nor waits
    /// for a lock: with no idle connection it declines, and `get` then
    /// reads on a blocking thread.
    #[tokio::test(flavor = "current_thread")]
    async fn get_reads_at_once_only_on_an_idle_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal, EventBus::new())
            .await
            .unwrap();
        let job = store.submit(NewJob::new("noop", "u")).await.unwrap();
        let idle: Vec<Connection> = store.readers.idle().drain(..).collect();
        assert!(
            store
                .readers
                .try_now(|conn| select_job(conn, job.id))
                .is_none(),
            "no idle connection: no read on this thread"
        );
        assert_eq!(store.get(job.id).await.unwrap().id, job.id);
        assert_eq!(
            store.readers.idle().len(),
            1,
            "the blocking read's connection is kept"
        );
        store.readers.idle().extend(idle);
        let read = store.readers.try_now(|conn| select_job(conn, job.id));
        assert!(
            matches!(read, Some(Ok(Some(_)))),
            "an idle connection reads at once"
        );
    }

    fn indexes(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_version_2_file_loses_the_running_indexes_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.sqlite3");
        let mut conn = open_connection(&path, Synchronous::Normal).unwrap();
        // A file as version 2 left it: the first two migrations and the
        // two indexes the schema then had.
        conn.execute_batch(sql::SCHEMA).unwrap();
        conn.execute_batch(sql::DEPENDENCIES).unwrap();
        conn.execute_batch(
            "CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'running';
             CREATE INDEX jobs_running_worker ON jobs (worker_id) WHERE status = 'running';
             INSERT INTO jobs (id, job_type, user_id, status, parameters, created_at, queued_at, updated_at)
                 VALUES ('j1', 'noop', 'u1', 'pending', '{}', 1, 1, 1);
             PRAGMA user_version = 2;",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let names = indexes(&conn);
        assert!(
            !names.iter().any(|name| name.starts_with("jobs_running")),
            "{names:?}"
        );
        assert!(names.contains(&"jobs_by_status".to_owned()), "{names:?}");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let jobs: i64 = conn
            .query_row("SELECT count(*) FROM jobs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(jobs, 1);
    }
}
