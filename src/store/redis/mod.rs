//! The Redis store: one queue shared by any number of API nodes and worker
//! processes on any number of machines. Every operation that reads and then
//! writes is one Lua script (`scripts/*.lua`), so the limits, the claim
//! tokens (fencing) and the status transitions hold across all of them.
//! Changes cross processes by pub/sub ([`pubsub`]): one subscription per
//! process, fanned out in memory by the [`EventBus`].

mod args;
mod audit;
mod decode;
pub(crate) mod keys;
mod pubsub;
mod schedules;
mod scripts;
mod tokens;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use self::keys::Keys;
use self::scripts::Scripts;
use crate::events::{EventBus, JobWatch};
use crate::model::audit::AuditEntry;
use crate::model::{
    ApiToken, Clock, Debounce, IdempotencyKey, Job, JobId, JobStatus, Millis, NewJob, Progress,
    Schedule, ScheduleOrigin, ScheduleSpec, ScheduleTick, Submitted, duration_millis,
};
use crate::store::{
    AuditPage, AuditQuery, ClaimParams, ClaimRef, Claimed, CleanupParams, CleanupReport, Exchanged,
    Finish, FinishedTotals, ListPage, ListQuery, LogLine, LogPage, Outcome, RateWindow,
    RecoverParams, RecoverReport, Serves, Store, StoreError, StoreResult, StoreStats, WorkerInfo,
    WorkerRecord,
};

/// Jobs deleted per cleanup script call.
const CLEANUP_BATCH: usize = 500;

/// Ids a listing call scans at most.
const LIST_MAX_SCAN: usize = 10_000;

/// How long a watch registration lasts without refresh.
const WATCH_TTL: Duration = Duration::from_secs(60);

/// How often a process refreshes its watch registrations: a few times per
/// [`WATCH_TTL`], so one late or failed refresh lets none lapse.
const WATCH_REFRESH: Duration = Duration::from_secs(15);

/// How long one store operation may take before it counts as failed, so a
/// Redis outage turns into prompt errors (503s, retried claims), never into
/// hung requests.
const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis failure; the operation is named by the adapter
/// ([`crate::store::during`]).
fn redis_err(e: redis::RedisError) -> StoreError {
    StoreError::backend_unavailable("redis", e)
}

/// Runs one Redis operation with the [`OP_TIMEOUT`] bound.
async fn bounded<T>(op: impl Future<Output = redis::RedisResult<T>>) -> StoreResult<T> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result.map_err(redis_err),
        Err(elapsed) => Err(StoreError::backend_unavailable("redis", elapsed)),
    }
}

/// The Redis store.
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: Scripts,
    keys: Keys,
    bus: EventBus,
    /// How long a processing lock (an entry of the `running` set) may
    /// outlive its lease with no running job behind it before cleanup
    /// clears it.
    orphaned_lock_after: Duration,
    held: Mutex<HashMap<Uuid, Job>>,
    clock: Clock,
    /// Queued jobs (pending or scheduled) per user, at most, across every
    /// process sharing the store; `None`: no quota.
    max_queued_per_user: Option<u64>,
}

/// What `submit.lua` answered, refusals other than a key's aside.
enum SubmitReply {
    /// The jobs, stored.
    Stored(Vec<Job>),
    /// The idempotency key holds this job, for the same body.
    Existing(JobId),
    /// The idempotency key holds this job, for another body.
    Mismatch(JobId),
    /// The debounce key's waiting job took the submission.
    Debounced(JobId),
    /// The schedule does not owe the tick: nothing stored.
    Skipped,
}

impl RedisStore {
    /// Runs `submit.lua` with `args` (made from `jobs`) and publishes what
    /// it stored.
    async fn run_submit(
        &self,
        jobs: Vec<NewJob>,
        args: Vec<String>,
        now: Millis,
    ) -> StoreResult<SubmitReply> {
        let replies = decode::array(self.run(&self.scripts.submit, args).await?)?;
        if let Some(refusal) = replies.first().and_then(decode::text) {
            if refusal == "quota" {
                return Err(decode::quota_refusal(&replies)?);
            }
            if refusal == "skipped" {
                return Ok(SubmitReply::Skipped);
            }
            let id = replies
                .get(1)
                .and_then(decode::text)
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| decode::corrupt("submit reply"))?;
            return match refusal.as_str() {
                "missing" => Err(StoreError::UnknownDependency(id)),
                "existing" => Ok(SubmitReply::Existing(id)),
                "mismatch" => Ok(SubmitReply::Mismatch(id)),
                "debounced" => Ok(SubmitReply::Debounced(id)),
                _ => Err(StoreError::unavailable(
                    "submit",
                    format!("job id {id} is taken"),
                )),
            };
        }
        let mut submitted = Vec::with_capacity(jobs.len());
        for (new, reply) in jobs.into_iter().zip(replies) {
            submitted.push(decode::submitted_job(new, now, decode::array(reply)?)?);
        }
        for job in &submitted {
            self.bus.publish(job);
        }
        if submitted.iter().any(|job| job.status == JobStatus::Pending) {
            self.bus.notify_work();
        }
        Ok(SubmitReply::Stored(submitted))
    }

    /// Connects to `url` (`redis://HOST:PORT/DB`) with keys under `{name}:`,
    /// and starts the change subscription and the watch refresher. Cleanup
    /// clears processing locks left `orphaned_lock_after` past their lease
    /// by a job that no longer runs. Every operation takes its time from
    /// `clock` (the scripts are given it). Submissions and restarts keep
    /// each user within `max_queued_per_user` queued jobs, if given,
    /// checked inside their scripts.
    pub async fn open(
        url: &str,
        name: &str,
        bus: EventBus,
        orphaned_lock_after: Duration,
        clock: Clock,
        max_queued_per_user: Option<u64>,
    ) -> StoreResult<Arc<RedisStore>> {
        let client = redis::Client::open(url).map_err(redis_err)?;
        // A few quick reconnection attempts per failure; while Redis stays
        // down, each new command starts another round (and fails fast).
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(redis_err)?;
        let store = Arc::new(RedisStore {
            conn,
            scripts: Scripts::new(),
            keys: Keys::new(name),
            bus: bus.clone(),
            orphaned_lock_after,
            held: Mutex::default(),
            clock,
            max_queued_per_user,
        });
        crate::store::vanished::spawn(Arc::downgrade(&store) as Weak<dyn Store>, bus.clone());
        pubsub::spawn(client, store.keys.clone(), bus, Arc::downgrade(&store));
        spawn_watch_refresher(Arc::downgrade(&store));
        Ok(store)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs `script` with the prefix as KEYS[1] and `args`.
    async fn run(&self, script: &redis::Script, args: Vec<String>) -> StoreResult<Value> {
        let mut invocation = script.key(self.keys.prefix());
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn();
        bounded(invocation.invoke_async(&mut conn)).await
    }

    /// Runs `exchange.lua`: ends `attempts` (their raw replies, in order),
    /// then claims as `claim` asks (the claimed jobs, announced here, after
    /// the jobs the claim promoted first).
    /// The jobs held under `tokens`, no longer held.
    fn take_held(&self, tokens: impl Iterator<Item = Uuid>) -> Vec<Option<Job>> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.map(|token| held.remove(&token)).collect()
    }

    /// Ends `attempts` and claims for `claim` in one script call; publishes
    /// every job it changed. Returns each attempt's job (or why not) and
    /// the jobs claimed.
    async fn exchange(
        &self,
        attempts: &[(ClaimRef, &Outcome)],
        now: Millis,
        claim: Option<&ClaimParams>,
    ) -> StoreResult<(Vec<StoreResult<Job>>, Vec<Claimed>)> {
        let held = self.take_held(attempts.iter().map(|(claim, _)| claim.token));
        let compact = held.iter().all(Option::is_some);
        let (args, tokens) = args::exchange(attempts, compact, now, claim);
        let mut parts = decode::array(self.run(&self.scripts.exchange, args).await?)?.into_iter();
        let replies = decode::array(parts.next().unwrap_or(Value::Nil))?;
        let claimed_items = decode::array(parts.next().unwrap_or(Value::Nil))?;
        self.publish_promoted(parts.next().unwrap_or(Value::Nil))?;
        let finished: Vec<StoreResult<Job>> = replies
            .into_iter()
            .zip(attempts)
            .zip(held)
            .map(|((reply, (claim, outcome)), held)| match (reply, held) {
                (Value::Int(revision), Some(job)) => {
                    Ok(decode::completed_snapshot(job, outcome, revision, now))
                }
                (reply, _) => decode::finished_job(claim.job_id, reply),
            })
            .collect();
        for job in finished.iter().flatten() {
            self.bus.publish(job);
        }
        let mut claimed = Vec::new();
        // Jobs come back only from a claim.
        let Some(params) = claim else {
            return Ok((finished, claimed));
        };
        for (item, token) in claimed_items.into_iter().zip(tokens) {
            let mut job = decode::claimed_job(item, &params.serves)?;
            job.start_attempt(&params.worker_id, now);
            self.bus.publish(&job);
            // Only a built-in worker finishes its claims through this
            // process; a remote worker's may end on another API node, which
            // would leave the snapshot here for good.
            if params.serves == Serves::BuiltIn {
                self.held
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(token, job.clone());
            }
            claimed.push(Claimed {
                claim: ClaimRef {
                    job_id: job.id,
                    token,
                },
                job,
            });
        }
        Ok((finished, claimed))
    }

    /// Publishes jobs a script promoted (each the values of
    /// [`decode::JOB_FIELDS`]), waking workers if there are any; returns
    /// how many.
    fn publish_promoted(&self, reply: Value) -> StoreResult<usize> {
        let promoted = decode::array(reply)?
            .into_iter()
            .map(decode::job_values)
            .collect::<StoreResult<Vec<Job>>>()?;
        for job in &promoted {
            self.bus.publish(job);
        }
        if !promoted.is_empty() {
            self.bus.notify_work();
        }
        Ok(promoted.len())
    }

    /// Refreshes the watch registrations of everything this process watches.
    async fn refresh_watches(&self) -> StoreResult<()> {
        let ids = self.bus.announced_ids();
        if ids.is_empty() {
            return Ok(());
        }
        let expiry = self.clock.now() + duration_millis(WATCH_TTL);
        let members: Vec<(Millis, String)> =
            ids.iter().map(|id| (expiry, id.to_string())).collect();
        let mut conn = self.conn();
        bounded(conn.zadd_multiple::<_, _, _, ()>(self.keys.named("watched"), &members)).await
    }
}

/// Refreshes the process's watch registrations every [`WATCH_REFRESH`]
/// until the store is dropped. A task of the store's own, not the worker
/// heartbeat's: an API node without workers has no heartbeat, and its
/// registrations used to lapse after [`WATCH_TTL`], after which its polls
/// and streams heard of no change made by another process.
fn spawn_watch_refresher(store: Weak<RedisStore>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(WATCH_REFRESH);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once; registrations are fresh then.
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(store) = store.upgrade() else { return };
            if let Err(e) = store.refresh_watches().await {
                tracing::warn!(error = %crate::store::error_chain(&e), "could not refresh watch registrations");
            }
        }
    });
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    async fn ping(&self) -> StoreResult<()> {
        crate::store::during("ping", async {
            bounded(redis::cmd("PING").query_async::<String>(&mut self.conn()))
                .await
                .map(drop)
        })
        .await
    }

    async fn probe_write(&self) -> StoreResult<()> {
        crate::store::during("probe_write", async {
            // A key of its own that expires: refused like any write when
            // Redis is out of memory under `noeviction`.
            let now = self.clock.now();
            bounded(
                redis::cmd("SET")
                    .arg(self.keys.named("write_probe"))
                    .arg(now)
                    .arg("PX")
                    .arg(60_000)
                    .query_async::<()>(&mut self.conn()),
            )
            .await
        })
        .await
    }

    async fn watch(&self, id: JobId) -> StoreResult<(JobWatch, Job)> {
        crate::store::during("watch", async {
            // Watch, then announce (scripts publish changes of announced jobs
            // only) and read in one script: no change can fall between them,
            // and a job that does not exist is not announced. The watch is
            // dropped with the error, which leaves the bus as it was.
            let watch = self.bus.watch(id);
            let expiry = self.clock.now() + duration_millis(WATCH_TTL);
            let reply = self
                .run(
                    &self.scripts.watch,
                    vec![id.to_string(), expiry.to_string()],
                )
                .await?;
            let values = decode::array(reply)?;
            if values.is_empty() {
                return Err(StoreError::NotFound(id));
            }
            Ok((watch, decode::job(&decode::Fields::of(&values))?))
        })
        .await
    }

    async fn submit_all(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Job>> {
        crate::store::during("submit_all", async {
            let now = self.clock.now();
            let args = args::submit(&jobs, self.max_queued_per_user, now);
            match self.run_submit(jobs, args, now).await? {
                SubmitReply::Stored(stored) => Ok(stored),
                _ => Err(decode::corrupt("submit reply: a key without a key")),
            }
        })
        .await
    }

    async fn submit_once(&self, job: NewJob, key: &IdempotencyKey) -> StoreResult<Submitted> {
        crate::store::during("submit_once", async {
            let now = self.clock.now();
            let args = args::submit_once(&job, key, self.max_queued_per_user, now);
            match self.run_submit(vec![job], args, now).await? {
                SubmitReply::Stored(mut stored) => stored
                    .pop()
                    .map(Submitted::Created)
                    .ok_or_else(|| decode::corrupt("submit reply")),
                SubmitReply::Existing(id) => self.get(id).await.map(Submitted::Existing),
                SubmitReply::Mismatch(job_id) => Err(StoreError::IdempotencyMismatch {
                    key: key.key.clone(),
                    job_id,
                }),
                _ => Err(decode::corrupt("submit reply: not an idempotency key's")),
            }
        })
        .await
    }

    async fn submit_debounced(&self, job: NewJob, debounce: &Debounce) -> StoreResult<Submitted> {
        crate::store::during("submit_debounced", async {
            let now = self.clock.now();
            let args = args::submit_debounced(&job, debounce, self.max_queued_per_user, now);
            let first = NewJob {
                run_at: Some(debounce.first_due(now)),
                ..job
            };
            match self.run_submit(vec![first], args, now).await? {
                SubmitReply::Stored(mut stored) => stored
                    .pop()
                    .map(Submitted::Created)
                    .ok_or_else(|| decode::corrupt("submit reply")),
                SubmitReply::Debounced(id) => {
                    let job = self.get(id).await?;
                    self.bus.publish(&job);
                    Ok(Submitted::Existing(job))
                }
                _ => Err(decode::corrupt("submit reply: not a debounce key's")),
            }
        })
        .await
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        crate::store::during("get", async {
            let values: Vec<Value> = bounded(
                redis::cmd("HGETALL")
                    .arg(self.keys.job(id))
                    .query_async(&mut self.conn()),
            )
            .await?;
            if values.is_empty() {
                return Err(StoreError::NotFound(id));
            }
            decode::job(&decode::Fields::of(&values))
        })
        .await
    }

    async fn missing(&self, ids: &[JobId]) -> StoreResult<Vec<JobId>> {
        crate::store::during("missing", async {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.exists(self.keys.job(*id));
            }
            let found: Vec<bool> = bounded(pipe.query_async(&mut self.conn())).await?;
            Ok(ids
                .iter()
                .zip(found)
                .filter_map(|(id, found)| (!found).then_some(*id))
                .collect())
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<ListPage> {
        crate::store::during("list", async {
            let (fields, big) = decode::list_fields(query.with_parameters, query.with_result);
            let reply = self
                .run(
                    &self.scripts.list,
                    args::list(query, LIST_MAX_SCAN, &fields, big),
                )
                .await?;
            let mut items = decode::array(reply)?.into_iter();
            let cursor = items
                .next()
                .as_ref()
                .and_then(decode::text)
                .and_then(|c| c.parse().ok());
            let jobs = items
                .map(|values| decode::named_values(&fields, values))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(ListPage {
                jobs,
                next_cursor: cursor,
            })
        })
        .await
    }

    async fn claim(&self, params: &ClaimParams) -> StoreResult<Vec<Claimed>> {
        crate::store::during("claim", async {
            let (_, claimed) = self.exchange(&[], self.clock.now(), Some(params)).await?;
            Ok(claimed)
        })
        .await
    }

    async fn report_progress(&self, claim: ClaimRef, progress: Progress) -> StoreResult<Job> {
        crate::store::during("report_progress", async {
            let progress = progress.clamped();
            let reply = self
                .run(
                    &self.scripts.progress,
                    args::progress(claim, &progress, self.clock.now()),
                )
                .await?;
            let job = decode::fenced_job(claim.job_id, reply)?;
            self.bus.publish(&job);
            if let Some(held) = self
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(&claim.token)
            {
                held.clone_from(&job);
            }
            Ok(job)
        })
        .await
    }

    async fn finish(&self, claim: ClaimRef, outcome: Outcome) -> StoreResult<Job> {
        crate::store::during("finish", async {
            let (finished, _) = self
                .exchange(&[(claim, &outcome)], self.clock.now(), None)
                .await?;
            finished
                .into_iter()
                .next()
                .unwrap_or(Err(StoreError::ClaimLost(claim.job_id)))
        })
        .await
    }

    async fn finish_and_claim(
        &self,
        items: &[Finish],
        refill: Option<&ClaimParams>,
    ) -> StoreResult<Exchanged> {
        crate::store::during("finish_and_claim", async {
            let attempts: Vec<(ClaimRef, &Outcome)> = items
                .iter()
                .map(|item| (item.claim, &item.outcome))
                .collect();
            let (finished, claimed) = self.exchange(&attempts, self.clock.now(), refill).await?;
            Ok(Exchanged { finished, claimed })
        })
        .await
    }

    async fn release(&self, claims: &[ClaimRef]) -> StoreResult<()> {
        crate::store::during("release", async {
            self.take_held(claims.iter().map(|claim| claim.token));
            let args = args::release(claims, self.clock.now());
            self.run(&self.scripts.release, args).await?;
            for claim in claims {
                if let Ok(job) = self.get(claim.job_id).await {
                    self.bus.publish(&job);
                }
            }
            self.bus.notify_work();
            Ok(())
        })
        .await
    }

    async fn cancel(&self, id: JobId) -> StoreResult<Job> {
        crate::store::during("cancel", async {
            let now = self.clock.now();
            let reply = self
                .run(&self.scripts.cancel, vec![id.to_string(), now.to_string()])
                .await?;
            let job = decode::checked_job(id, reply)?;
            self.bus.publish(&job);
            Ok(job)
        })
        .await
    }

    async fn restart(&self, id: JobId, parameters: Option<Json>) -> StoreResult<Job> {
        crate::store::during("restart", async {
            let now = self.clock.now();
            let reply = self
                .run(
                    &self.scripts.restart,
                    vec![
                        id.to_string(),
                        now.to_string(),
                        args::opt(parameters),
                        args::opt(self.max_queued_per_user),
                    ],
                )
                .await?;
            let job = decode::checked_job(id, reply)?;
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
            let args = args::heartbeat(worker, held, lease_until, now);
            decode::ids(self.run(&self.scripts.heartbeat, args).await?)
        })
        .await
    }

    async fn unregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        crate::store::during("unregister_worker", async {
            bounded(
                redis::pipe()
                    .atomic()
                    .del(self.keys.named(&format!("worker:{worker_id}")))
                    .zrem(self.keys.named("workers"), worker_id)
                    .query_async::<()>(&mut self.conn()),
            )
            .await
        })
        .await
    }

    async fn expire_due(&self) -> StoreResult<Vec<Job>> {
        crate::store::during("expire_due", async {
            let mut args = vec![self.clock.now().to_string()];
            args.extend(decode::JOB_FIELDS.map(String::from));
            let expired = decode::array(self.run(&self.scripts.expire, args).await?)?
                .into_iter()
                .map(decode::job_values)
                .collect::<StoreResult<Vec<Job>>>()?;
            for job in &expired {
                self.bus.publish(job);
            }
            Ok(expired)
        })
        .await
    }

    async fn promote_due(&self) -> StoreResult<usize> {
        crate::store::during("promote_due", async {
            let mut args = vec![self.clock.now().to_string()];
            args.extend(decode::JOB_FIELDS.map(String::from));
            let promoted = self.run(&self.scripts.promote, args).await?;
            self.publish_promoted(promoted)
        })
        .await
    }

    async fn recover_expired(&self, params: &RecoverParams) -> StoreResult<RecoverReport> {
        crate::store::during("recover_expired", async {
            let now = self.clock.now();
            let stale_before = now.saturating_sub(duration_millis(params.stale_worker_after));
            let mut args = vec![
                now.to_string(),
                params.max_interruptions.to_string(),
                stale_before.to_string(),
            ];
            args.extend(params.dead_workers.iter().cloned());
            let reply = self.run(&self.scripts.recover, args).await?;
            let mut parts = decode::array(reply)?.into_iter();
            let requeued = decode::ids(parts.next().unwrap_or(Value::Nil))?;
            let failed = decode::ids(parts.next().unwrap_or(Value::Nil))?;
            let stale_workers_removed = parts
                .next()
                .as_ref()
                .and_then(decode::text)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            for id in requeued.iter().chain(&failed) {
                if let Ok(job) = self.get(*id).await {
                    self.bus.publish(&job);
                }
            }
            if !requeued.is_empty() {
                self.bus.notify_work();
            }
            Ok(RecoverReport {
                requeued,
                failed,
                stale_workers_removed,
            })
        })
        .await
    }

    async fn cleanup(&self, params: &CleanupParams) -> StoreResult<CleanupReport> {
        crate::store::during("cleanup", async {
            let now = self.clock.now();
            let completed_before = now.saturating_sub(duration_millis(params.completed_retention));
            let failed_before = now.saturating_sub(duration_millis(params.failed_retention));
            // One pass at a time across all nodes: a lock that expires by itself
            // if its holder dies.
            let lock = self.keys.named("lock:cleanup");
            let token = Uuid::new_v4().to_string();
            let acquired: Option<String> = bounded(
                redis::cmd("SET")
                    .arg(&lock)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(60_000)
                    .query_async(&mut self.conn()),
            )
            .await?;
            if acquired.is_none() {
                return Ok(CleanupReport::default());
            }
            let mut report = CleanupReport::default();
            loop {
                let deleted: usize = redis::FromRedisValue::from_redis_value(
                    self.run(
                        &self.scripts.cleanup,
                        vec![
                            completed_before.to_string(),
                            failed_before.to_string(),
                            CLEANUP_BATCH.to_string(),
                        ],
                    )
                    .await?,
                )
                .map_err(decode::corrupt)?;
                report.jobs_deleted += deleted;
                if deleted < CLEANUP_BATCH {
                    break;
                }
            }
            report.audit_deleted = self
                .delete_expired_audit(now.saturating_sub(duration_millis(params.audit_retention)))
                .await?;
            let tokens_before = now.saturating_sub(duration_millis(params.failed_retention));
            loop {
                let deleted: usize = redis::from_redis_value(
                    self.run(
                        &self.scripts.cleanup_tokens,
                        vec![tokens_before.to_string(), CLEANUP_BATCH.to_string()],
                    )
                    .await?,
                )
                .map_err(decode::corrupt)?;
                report.tokens_deleted += deleted;
                if deleted < CLEANUP_BATCH {
                    break;
                }
            }
            let orphaned_before = now.saturating_sub(duration_millis(self.orphaned_lock_after));
            let cleared = self
                .run(
                    &self.scripts.cleanup_finish,
                    vec![now.to_string(), orphaned_before.to_string(), token],
                )
                .await?;
            let cleared: usize =
                redis::FromRedisValue::from_redis_value(cleared).map_err(decode::corrupt)?;
            // The scripts keep the running set in step with the jobs, so a
            // lock to clear means something wrote around them.
            if cleared > 0 {
                tracing::warn!(locks_cleared = cleared, "cleared orphaned processing locks");
            }
            Ok(report)
        })
        .await
    }

    async fn stats(&self, active_within: Duration) -> StoreResult<StoreStats> {
        crate::store::during("stats", async {
            let active_since = self.clock.ago(active_within);
            let workers = self.keys.named("workers");
            let (counts, active, stale, last_cleanup): (
                Vec<(String, i64)>,
                usize,
                usize,
                Option<Millis>,
            ) = bounded(
                redis::pipe()
                    .hgetall(self.keys.named("counts"))
                    .zcount(&workers, active_since, "+inf")
                    .zcount(&workers, "-inf", format!("({active_since}"))
                    .hget(self.keys.named("meta"), "last_cleanup")
                    .query_async(&mut self.conn()),
            )
            .await?;
            let counts = JobStatus::ALL
                .iter()
                .map(|status| {
                    let n = counts
                        .iter()
                        .find(|(s, _)| s == status.as_str())
                        .map_or(0, |(_, n)| (*n).max(0) as u64);
                    (*status, n)
                })
                .collect();
            Ok(StoreStats {
                counts,
                active_workers: active,
                stale_workers: stale,
                last_cleanup,
            })
        })
        .await
    }

    async fn finished_totals(&self) -> StoreResult<FinishedTotals> {
        // One MULTI/EXEC: cleanup moves jobs from `counts` to `retired` in
        // one script, so a read of both never sees a job twice or not at all.
        const TERMINAL: [&str; 3] = ["completed", "failed", "cancelled"];
        let (now, retired): (Vec<Option<i64>>, Vec<Option<i64>>) = bounded(
            redis::pipe()
                .atomic()
                .hmget(self.keys.named("counts"), &TERMINAL)
                .hmget(self.keys.named("retired"), &TERMINAL)
                .query_async(&mut self.conn()),
        )
        .await?;
        let total = |i: usize| {
            let n = |v: &Vec<Option<i64>>| v.get(i).copied().flatten().unwrap_or(0).max(0);
            (n(&now) + n(&retired)) as u64
        };
        Ok(FinishedTotals {
            completed: total(0),
            failed: total(1),
            cancelled: total(2),
        })
    }

    async fn workers(&self) -> StoreResult<Vec<WorkerRecord>> {
        crate::store::during("workers", async {
            let reply = self.run(&self.scripts.workers, Vec::new()).await?;
            decode::array(reply)?
                .into_iter()
                .map(decode::worker)
                .collect()
        })
        .await
    }

    async fn rate_window(&self, scope: &str) -> StoreResult<Option<RateWindow>> {
        crate::store::during("rate_window", async {
            let key = self.keys.named(&format!("rate:{scope}"));
            let (closes_at, started): (Option<Millis>, Option<u64>) = bounded(
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("closes")
                    .arg("started")
                    .query_async(&mut self.conn()),
            )
            .await?;
            let now = self.clock.now();
            Ok(closes_at
                .filter(|closes| *closes > now)
                .map(|closes_at| RateWindow {
                    closes_at,
                    started: started.unwrap_or(0),
                }))
        })
        .await
    }

    async fn next_due(&self) -> StoreResult<Option<Millis>> {
        crate::store::during("next_due", async {
            let mut conn = self.conn();
            let first: Vec<(String, f64)> =
                bounded(conn.zrange_withscores(self.keys.named("scheduled"), 0, 0)).await?;
            Ok(first.first().map(|(_, due)| *due as Millis))
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
            let mut args = Vec::with_capacity(4 + 2 * lines.len());
            args.extend([
                claim.job_id.to_string(),
                claim.token.to_string(),
                self.clock.now().to_string(),
                max_bytes.to_string(),
            ]);
            for line in lines {
                args.push(line.stream.as_str().to_owned());
                args.push(line.text.clone());
            }
            let written: i64 = redis::FromRedisValue::from_redis_value(
                self.run(&self.scripts.append_log, args).await?,
            )
            .map_err(decode::corrupt)?;
            if written == 0 {
                return Err(StoreError::ClaimLost(claim.job_id));
            }
            self.bus.log_appended(claim.job_id);
            Ok(())
        })
        .await
    }

    async fn read_log(&self, id: JobId, after: u64, limit: usize) -> StoreResult<LogPage> {
        crate::store::during("read_log", async {
            // Lua numbers are doubles: positions beyond 2^53 read as the end.
            let from = after.min(1 << 53);
            let reply = self
                .run(
                    &self.scripts.read_log,
                    vec![id.to_string(), from.to_string(), limit.max(1).to_string()],
                )
                .await?;
            decode::log_page(reply, after)?.ok_or(StoreError::NotFound(id))
        })
        .await
    }

    async fn create_token(&self, token: &ApiToken) -> StoreResult<()> {
        crate::store::during(
            "create_token",
            tokens::create(self.conn(), &self.keys, token),
        )
        .await
    }

    async fn token(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        crate::store::during("token", tokens::get(self.conn(), &self.keys, id)).await
    }

    async fn tokens(&self) -> StoreResult<Vec<ApiToken>> {
        crate::store::during("tokens", tokens::list(self.conn(), &self.keys)).await
    }

    async fn revoke_token(&self, id: &str) -> StoreResult<Option<ApiToken>> {
        crate::store::during("revoke_token", async {
            let now = self.clock.now().to_string();
            let reply = self
                .run(&self.scripts.revoke_token, vec![id.to_owned(), now])
                .await?;
            tokens::revoked(id, reply)
        })
        .await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        crate::store::during("append_audit", self.append_audit_entries(entries)).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<AuditPage> {
        crate::store::during("list_audit", self.audit_page(query)).await
    }

    async fn put_schedule(
        &self,
        name: &str,
        spec: &ScheduleSpec,
        origin: ScheduleOrigin,
        replace: bool,
    ) -> StoreResult<(Schedule, bool)> {
        crate::store::during("put_schedule", async {
            let definition = serde_json::to_string(spec)
                .map_err(|e| StoreError::corrupt("put_schedule", format!("definition: {e}")))?;
            let args = vec![
                name.to_owned(),
                definition,
                origin.as_str().to_owned(),
                if replace { "1" } else { "" }.to_owned(),
                self.clock.now().to_string(),
            ];
            let mut reply = decode::array(self.run(&self.scripts.put_schedule, args).await?)?;
            if reply.is_empty() {
                return Err(decode::corrupt("put_schedule reply"));
            }
            let created = matches!(reply.remove(0), Value::Int(1));
            let schedule = schedules::from_reply(name, Value::Array(reply))?
                .ok_or_else(|| decode::corrupt("put_schedule reply: no schedule"))?;
            Ok((schedule, created))
        })
        .await
    }

    async fn schedules(&self) -> StoreResult<Vec<Schedule>> {
        crate::store::during("schedules", schedules::list(self.conn(), &self.keys)).await
    }

    async fn pause_schedule(&self, name: &str, paused: bool) -> StoreResult<Option<Schedule>> {
        crate::store::during("pause_schedule", async {
            let args = vec![
                name.to_owned(),
                if paused { "1" } else { "0" }.to_owned(),
                self.clock.now().to_string(),
            ];
            let reply = self.run(&self.scripts.pause_schedule, args).await?;
            schedules::from_reply(name, reply)
        })
        .await
    }

    async fn delete_schedule(&self, name: &str) -> StoreResult<bool> {
        crate::store::during(
            "delete_schedule",
            schedules::delete(self.conn(), &self.keys, name),
        )
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
            let job = NewJob {
                schedule: Some(tick.clone()),
                ..job
            };
            let args = args::fire_schedule(&job, tick, revision, self.max_queued_per_user, now);
            match self.run_submit(vec![job], args, now).await? {
                SubmitReply::Stored(mut stored) => stored
                    .pop()
                    .map(Some)
                    .ok_or_else(|| decode::corrupt("submit reply")),
                SubmitReply::Skipped => Ok(None),
                _ => Err(decode::corrupt("submit reply: not a schedule's")),
            }
        })
        .await
    }
}
