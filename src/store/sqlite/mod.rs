//! The embedded store: one SQLite file in WAL mode. Writes go through a
//! single writer thread with group commit ([`writer`]); reads use a small
//! pool of read connections, which WAL lets run beside the writer. Counts
//! per status and per user are kept by triggers (`sql/schema.sql`), so
//! stats and fair claiming never scan the jobs table.
//!
//! Several processes may share one file (`jobd serve --workers 0` beside
//! `jobd worker`): each learns of the others' writes by tailing the
//! `job_changes` log ([`tail`]).

mod audit;
mod checkpoint;
mod connection;
mod debounce;
mod idempotency;
mod limits;
mod logs;
mod ops;
mod readers;
mod retention;
mod rows;
mod schedules;
mod space;
mod sql;
mod tail;
mod tokens;
mod writer;

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use serde_json::Value;

use self::connection::{migrate, open_connection};
use self::ops::*;
use self::readers::ReaderPool;
use self::rows::{db_err, select_job};
use self::writer::Writer;
use crate::config::Synchronous;
use crate::events::{EventBus, JobWatch};
use crate::model::audit::AuditEntry;
use crate::model::{
    ApiToken, Clock, Debounce, IdempotencyKey, Job, JobId, JobStatus, Millis, NewJob, Progress,
    Schedule, ScheduleOrigin, ScheduleSpec, ScheduleTick, Submitted, duration_millis,
};
use crate::store::{
    AuditPage, AuditQuery, ClaimParams, ClaimRef, Claimed, CleanupParams, CleanupReport, Exchanged,
    Finish, FinishedTotals, ListPage, ListQuery, LogLine, LogPage, Outcome, RateWindow,
    RecoverParams, RecoverReport, Store, StoreError, StoreResult, StoreStats, WorkerInfo,
    WorkerRecord,
};

/// The embedded SQLite store.
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<ReaderPool>,
    bus: EventBus,
    clock: Clock,
    /// Queued jobs (pending or scheduled) per user, at most; `None`: no
    /// quota.
    max_queued_per_user: Option<u64>,
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/jobd.sqlite3`, applies the
    /// schema and starts the writer thread and the change tailer. Every
    /// operation takes its time from `clock`. Submissions and restarts
    /// keep each user within `max_queued_per_user` queued jobs, if given.
    pub async fn open(
        data_dir: &Path,
        synchronous: Synchronous,
        bus: EventBus,
        clock: Clock,
        max_queued_per_user: Option<u64>,
    ) -> StoreResult<Arc<SqliteStore>> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::backend_unavailable(
                "sqlite",
                format!("cannot create {}: {e}", data_dir.display()),
            )
        })?;
        let path = data_dir.join("jobd.sqlite3");
        let mut writer_conn = open_connection(&path, synchronous).map_err(db_err)?;
        migrate(&mut writer_conn).map_err(db_err)?;
        space::convert(&writer_conn, &path);
        space::truncate_log_at_open(&path);
        // The checkpointer thread copies the log into the file, the writer
        // only its last pages (see writer::run).
        writer_conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(db_err)?;
        let writer =
            Writer::start(writer_conn).map_err(|e| StoreError::backend_unavailable("sqlite", e))?;
        let readers = Arc::new(
            ReaderPool::open(&path, readers::max_readers(), readers::WARM).map_err(db_err)?,
        );
        readers::spawn_shrinker(Arc::downgrade(&readers));
        let store = Arc::new(SqliteStore {
            writer,
            readers,
            bus: bus.clone(),
            clock,
            max_queued_per_user,
        });
        crate::store::vanished::spawn(Arc::downgrade(&store) as Weak<dyn Store>, bus.clone());
        let tail_conn = open_connection(&path, synchronous).map_err(db_err)?;
        tail::spawn(tail_conn, Arc::downgrade(&store), bus);
        let checkpoint_conn = open_connection(&path, synchronous).map_err(db_err)?;
        checkpoint::spawn(checkpoint_conn, Arc::downgrade(&store))
            .map_err(|e| StoreError::backend_unavailable("sqlite", e))?;
        retention::spawn(Arc::downgrade(&store));
        Ok(store)
    }

    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        // The wait for a connection is here, on the async runtime; the
        // blocking thread only reads.
        let permit = self.readers.permit().await?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(permit, work))
            .await
            .map_err(|e| StoreError::backend_unavailable("sqlite", e))?
    }

    /// Claims as [`Store::claim`] does, at `now`.
    async fn claim_at(&self, params: &ClaimParams, now: Millis) -> StoreResult<Vec<Claimed>> {
        let params = params.clone();
        let (claimed, promoted) = self
            .writer
            .write_background(move |conn| claim_in(conn, &params, now))
            .await?;
        self.publish_all(&promoted);
        for claimed in &claimed {
            self.bus.publish(&claimed.job);
        }
        Ok(claimed)
    }

    fn publish_all(&self, jobs: &[Job]) {
        for job in jobs {
            self.bus.publish(job);
        }
    }
}

/// Attempts ended, or jobs claimed, per write of a worker's batch: each
/// write stays short, so a request's write never waits long behind one.
const WRITE_CHUNK: usize = 16;

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    async fn ping(&self) -> StoreResult<()> {
        crate::store::during("ping", async {
            self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err))
                .await?;
            // A read alone would not notice a stopped writer.
            self.writer.write(|_| Ok(())).await
        })
        .await
    }

    async fn probe_write(&self) -> StoreResult<()> {
        crate::store::during("probe_write", async {
            let now = self.clock.now();
            self.writer
                .write(move |conn| ops::probe_write_in(conn, now))
                .await
        })
        .await
    }

    async fn submit_all(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Job>> {
        crate::store::during("submit_all", async {
            let now = self.clock.now();
            let quota = self.max_queued_per_user;
            // One write, one savepoint: an error (the quota's too) undoes
            // every insert of the call.
            let stored = self
                .writer
                .write(move |conn| insert_jobs(conn, jobs, quota, now))
                .await?;
            self.publish_all(&stored);
            if stored.iter().any(|job| job.status == JobStatus::Pending) {
                self.bus.notify_work();
            }
            Ok(stored)
        })
        .await
    }

    async fn submit_once(&self, job: NewJob, key: &IdempotencyKey) -> StoreResult<Submitted> {
        crate::store::during("submit_once", async {
            let now = self.clock.now();
            let quota = self.max_queued_per_user;
            let key = key.clone();
            // One write transaction: the key's check and the job's insert
            // cannot interleave with another process's.
            let submitted = self
                .writer
                .write(move |conn| idempotency::submit_once_in(conn, job, &key, quota, now))
                .await?;
            if let Submitted::Created(job) = &submitted {
                self.publish_all(std::slice::from_ref(job));
                if job.status == JobStatus::Pending {
                    self.bus.notify_work();
                }
            }
            Ok(submitted)
        })
        .await
    }

    async fn submit_debounced(&self, job: NewJob, debounce: &Debounce) -> StoreResult<Submitted> {
        crate::store::during("submit_debounced", async {
            let now = self.clock.now();
            let quota = self.max_queued_per_user;
            let debounce = debounce.clone();
            // One write transaction: the key's check and the collapse or
            // insert cannot interleave with another process's.
            let submitted = self
                .writer
                .write(move |conn| debounce::submit_debounced_in(conn, job, &debounce, quota, now))
                .await?;
            self.bus.publish(submitted.job());
            Ok(submitted)
        })
        .await
    }

    async fn watch(&self, id: JobId) -> StoreResult<(JobWatch, Job)> {
        crate::store::during("watch", async {
            // Every change, by any process, reaches the bus (the change log is
            // tailed): watch, then read.
            let watch = self.bus.watch(id);
            Ok((watch, self.get(id).await?))
        })
        .await
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        crate::store::during("get", async {
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
        })
        .await
    }

    async fn missing(&self, ids: &[JobId]) -> StoreResult<Vec<JobId>> {
        crate::store::during("missing", async {
            let ids = ids.to_vec();
            self.read(move |conn| missing_in(conn, &ids)).await
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<ListPage> {
        crate::store::during("list", async {
            let query = query.clone();
            self.read(move |conn| list_in(conn, &query)).await
        })
        .await
    }

    async fn claim(&self, params: &ClaimParams) -> StoreResult<Vec<Claimed>> {
        crate::store::during("claim", self.claim_at(params, self.clock.now())).await
    }

    async fn report_progress(&self, claim: ClaimRef, progress: Progress) -> StoreResult<Job> {
        crate::store::during("report_progress", async {
            let progress = progress.clamped();
            let now = self.clock.now();
            let job = self
                .writer
                .write_background(move |conn| progress_in(conn, claim, progress, now))
                .await?;
            self.bus.publish(&job);
            Ok(job)
        })
        .await
    }

    async fn finish(&self, claim: ClaimRef, outcome: Outcome) -> StoreResult<Job> {
        crate::store::during("finish", async {
            let now = self.clock.now();
            let job = self
                .writer
                .write_background(move |conn| finish_in(conn, claim, &outcome, now))
                .await?;
            self.bus.publish(&job);
            Ok(job)
        })
        .await
    }

    async fn finish_and_claim(
        &self,
        items: &[Finish],
        refill: Option<&ClaimParams>,
    ) -> StoreResult<Exchanged> {
        crate::store::during("finish_and_claim", async {
            let now = self.clock.now();
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
                            let cause = crate::store::error_chain(&e);
                            (0..count)
                                .map(|_| {
                                    Err(StoreError::unavailable("finish_and_claim", cause.clone()))
                                })
                                .collect()
                        })
                }
            }));
            let wanted = refill.map_or(0, |params| params.max_jobs);
            let claiming =
                futures::future::join_all((0..wanted).step_by(WRITE_CHUNK).filter_map(|first| {
                    let mut params = refill?.clone();
                    params.max_jobs = WRITE_CHUNK.min(wanted - first);
                    Some(async move { self.claim_at(&params, now).await })
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
                    Err(e) => tracing::warn!(error = %crate::store::error_chain(&e), "claim beside recording outcomes failed"),
                }
            }
            Ok(Exchanged {
                finished,
                claimed: jobs,
            })
        })
        .await
    }

    async fn release(&self, claims: &[ClaimRef]) -> StoreResult<()> {
        crate::store::during("release", async {
            let now = self.clock.now();
            let claims = claims.to_vec();
            let released = self
                .writer
                .write_background(move |conn| release_in(conn, &claims, now))
                .await?;
            self.publish_all(&released);
            self.bus.notify_work();
            Ok(())
        })
        .await
    }

    async fn cancel(&self, id: JobId) -> StoreResult<Job> {
        crate::store::during("cancel", async {
            let now = self.clock.now();
            let job = self
                .writer
                .write(move |conn| cancel_in(conn, id, now))
                .await?;
            self.bus.publish(&job);
            Ok(job)
        })
        .await
    }

    async fn restart(&self, id: JobId, parameters: Option<Value>) -> StoreResult<Job> {
        crate::store::during("restart", async {
            let now = self.clock.now();
            let quota = self.max_queued_per_user;
            let job = self
                .writer
                .write(move |conn| restart_in(conn, id, parameters.as_ref(), quota, now))
                .await?;
            self.bus.publish(&job);
            self.bus.notify_work();
            Ok(job)
        })
        .await
    }

    async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        held: &[ClaimRef],
        lease: Duration,
    ) -> StoreResult<Vec<JobId>> {
        crate::store::during("heartbeat", async {
            let now = self.clock.now();
            let lease_until = now.saturating_add(duration_millis(lease));
            let worker = worker.clone();
            let held = held.to_vec();
            self.writer
                .write_background(move |conn| heartbeat_in(conn, &worker, &held, lease_until, now))
                .await
        })
        .await
    }

    async fn unregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        crate::store::during("unregister_worker", async {
            let worker_id = worker_id.to_owned();
            self.writer
                .write_background(move |conn| unregister_in(conn, &worker_id))
                .await
        })
        .await
    }

    async fn expire_due(&self) -> StoreResult<Vec<Job>> {
        crate::store::during("expire_due", async {
            let now = self.clock.now();
            // A read first: the pass runs often, and mostly finds nothing.
            match self.read(next_expiry_in).await? {
                Some(at) if at <= now => {}
                _ => return Ok(Vec::new()),
            }
            let expired = self
                .writer
                .write_background(move |conn| expire_in(conn, now))
                .await?;
            self.publish_all(&expired);
            Ok(expired)
        })
        .await
    }

    async fn promote_due(&self) -> StoreResult<usize> {
        crate::store::during("promote_due", async {
            let now = self.clock.now();
            let promoted = self
                .writer
                .write_background(move |conn| promote_in(conn, now))
                .await?;
            self.publish_all(&promoted);
            if !promoted.is_empty() {
                self.bus.notify_work();
            }
            Ok(promoted.len())
        })
        .await
    }

    async fn recover_expired(&self, params: &RecoverParams) -> StoreResult<RecoverReport> {
        crate::store::during("recover_expired", async {
            let params = params.clone();
            let now = self.clock.now();
            let (report, changed) = self
                .writer
                .write_background(move |conn| recover_in(conn, &params, now))
                .await?;
            self.publish_all(&changed);
            if !report.requeued.is_empty() {
                self.bus.notify_work();
            }
            Ok(report)
        })
        .await
    }

    async fn cleanup(&self, params: &CleanupParams) -> StoreResult<CleanupReport> {
        crate::store::during("cleanup", async {
            let now = self.clock.now();
            let completed_before = now.saturating_sub(duration_millis(params.completed_retention));
            let failed_before = now.saturating_sub(duration_millis(params.failed_retention));
            let mut report = CleanupReport::default();
            // One bounded batch per write, so claims interleave with a long purge.
            loop {
                let deleted = self
                    .writer
                    .write_background(move |conn| {
                        delete_expired_in(conn, completed_before, failed_before)
                    })
                    .await?;
                report.jobs_deleted += deleted;
                if deleted == 0 {
                    break;
                }
            }
            let audit_before = now.saturating_sub(duration_millis(params.audit_retention));
            loop {
                let deleted = self
                    .writer
                    .write_background(move |conn| {
                        audit::delete_expired_audit_in(conn, audit_before)
                    })
                    .await?;
                report.audit_deleted += deleted;
                if deleted == 0 {
                    break;
                }
            }
            self.writer
                .write_background(move |conn| idempotency::delete_expired_keys_in(conn, now))
                .await?;
            self.writer
                .write_background(move |conn| debounce::delete_expired_keys_in(conn, now))
                .await?;
            let tokens_before = now.saturating_sub(duration_millis(params.failed_retention));
            report.tokens_deleted = self
                .writer
                .write_background(move |conn| tokens::delete_ended_tokens_in(conn, tokens_before))
                .await?;
            // Orphaned processing locks cannot exist here: the schema's CHECK
            // ties the lock to the running status, and every transition out of
            // running clears it in the same statement (the Redis backend has
            // a running set to keep in step, and clears its orphans itself).
            self.writer
                .write_background(move |conn| end_cleanup_in(conn, now))
                .await?;
            // The deleted jobs' pages are free inside the file: give them
            // back to the file system, in steps short enough for requests'
            // writes to pass between them.
            report.bytes_released = space::give_back(&self.writer).await?;
            Ok(report)
        })
        .await
    }

    async fn stats(&self, active_within: Duration) -> StoreResult<StoreStats> {
        crate::store::during("stats", async {
            let active_since = self.clock.ago(active_within);
            self.read(move |conn| stats_in(conn, active_since)).await
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
        crate::store::during("workers", async { self.read(workers_in).await }).await
    }

    async fn next_due(&self) -> StoreResult<Option<Millis>> {
        crate::store::during("next_due", async { self.read(next_due_in).await }).await
    }

    async fn rate_window(&self, scope: &str) -> StoreResult<Option<RateWindow>> {
        crate::store::during("rate_window", async {
            let scope = scope.to_owned();
            let now = self.clock.now();
            let window = self
                .read(move |conn| limits::rate_window(conn, &scope, now))
                .await?;
            Ok(window.map(|(closes_at, started)| RateWindow { closes_at, started }))
        })
        .await
    }

    async fn append_log(
        &self,
        claim: ClaimRef,
        lines: &[LogLine],
        max_bytes: usize,
    ) -> StoreResult<()> {
        crate::store::during("append_log", async {
            let now = self.clock.now();
            let lines = lines.to_vec();
            self.writer
                .write_background(move |conn| {
                    logs::append_log_in(conn, claim, &lines, max_bytes, now)
                })
                .await?;
            self.bus.log_appended(claim.job_id);
            Ok(())
        })
        .await
    }

    async fn read_log(&self, id: JobId, after: u64, limit: usize) -> StoreResult<LogPage> {
        crate::store::during("read_log", async {
            self.read(move |conn| logs::read_log_in(conn, id, after, limit))
                .await
        })
        .await
    }

    async fn create_token(&self, token: &ApiToken) -> StoreResult<()> {
        crate::store::during("create_token", async {
            let token = token.clone();
            self.writer
                .write(move |conn| tokens::insert_token_in(conn, &token))
                .await
        })
        .await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        crate::store::during("append_audit", async {
            if entries.is_empty() {
                return Ok(());
            }
            let entries = entries.to_vec();
            self.writer
                .write_background(move |conn| audit::append_audit_in(conn, &entries))
                .await
        })
        .await
    }

    async fn token(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        crate::store::during("token", async {
            let id = id.to_owned();
            self.read(move |conn| tokens::select_token_in(conn, &id))
                .await
        })
        .await
    }

    async fn tokens(&self) -> StoreResult<Vec<ApiToken>> {
        crate::store::during("tokens", async {
            self.read(tokens::select_tokens_in).await
        })
        .await
    }

    async fn revoke_token(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        crate::store::during("revoke_token", async {
            let id = id.to_owned();
            let now = self.clock.now();
            self.writer
                .write(move |conn| tokens::revoke_token_in(conn, &id, now))
                .await
        })
        .await
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<AuditPage> {
        crate::store::during("list_audit", async {
            let query = query.clone();
            self.read(move |conn| audit::list_audit_in(conn, &query))
                .await
        })
        .await
    }

    async fn put_schedule(
        &self,
        name: &str,
        spec: &ScheduleSpec,
        origin: ScheduleOrigin,
        replace: bool,
    ) -> StoreResult<(Schedule, bool)> {
        crate::store::during("put_schedule", async {
            let (name, spec) = (name.to_owned(), spec.clone());
            let now = self.clock.now();
            self.writer
                .write(move |conn| {
                    schedules::put_schedule_in(conn, &name, &spec, origin, replace, now)
                })
                .await
        })
        .await
    }

    async fn schedules(&self) -> StoreResult<Vec<Schedule>> {
        crate::store::during("schedules", async {
            self.read(|conn| schedules::select_schedules_in(conn, None))
                .await
        })
        .await
    }

    async fn pause_schedule(&self, name: &str, paused: bool) -> StoreResult<Option<Schedule>> {
        crate::store::during("pause_schedule", async {
            let name = name.to_owned();
            let now = self.clock.now();
            self.writer
                .write(move |conn| schedules::pause_schedule_in(conn, &name, paused, now))
                .await
        })
        .await
    }

    async fn delete_schedule(&self, name: &str) -> StoreResult<bool> {
        crate::store::during("delete_schedule", async {
            let name = name.to_owned();
            self.writer
                .write(move |conn| schedules::delete_schedule_in(conn, &name))
                .await
        })
        .await
    }

    async fn fire_schedule(
        &self,
        tick: &ScheduleTick,
        revision: i64,
        job: NewJob,
    ) -> StoreResult<Option<Job>> {
        crate::store::during("fire_schedule", async {
            let now = self.clock.now();
            let quota = self.max_queued_per_user;
            let tick = tick.clone();
            // One write transaction: the tick's claim and the job's insert
            // cannot interleave with another process's.
            let fired = self
                .writer
                .write(move |conn| {
                    schedules::fire_schedule_in(conn, &tick, revision, job, quota, now)
                })
                .await?;
            if let Some(job) = &fired {
                self.publish_all(std::slice::from_ref(job));
                if job.status == JobStatus::Pending {
                    self.bus.notify_work();
                }
            }
            Ok(fired)
        })
        .await
    }
}
