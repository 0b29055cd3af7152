//! The Redis store: one queue shared by any number of API nodes and worker
//! processes on any number of machines. Every operation that reads and then
//! writes is one Lua script (`scripts/*.lua`), so the limits, the claim
//! tokens (fencing) and the status transitions hold across all of them.
//! Changes cross processes by pub/sub ([`pubsub`]): one subscription per
//! process, fanned out in memory by the [`EventBus`].

mod decode;
pub mod keys;
mod pubsub;
mod scripts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use self::keys::Keys;
use self::scripts::Scripts;
use crate::events::{EventBus, JobWatch};
use crate::model::{Job, JobId, JobStatus, Millis, NewJob, Progress, now_millis};
use crate::store::{
    ClaimParams, ClaimRef, Claimed, CleanupParams, CleanupReport, Exchanged, Finish,
    FinishedTotals, ListPage, ListQuery, Outcome, RecoverParams, RecoverReport, Store, StoreError,
    StoreResult, StoreStats, WorkerInfo, WorkerRecord,
};

/// Jobs deleted per cleanup script call.
const CLEANUP_BATCH: usize = 500;

/// Ids a listing call scans at most.
const LIST_MAX_SCAN: usize = 10_000;

/// How long a watch registration lasts without refresh.
const WATCH_TTL: Duration = Duration::from_secs(60);

/// How long one store operation may take before it counts as failed, so a
/// Redis outage turns into prompt errors (503s, retried claims), never into
/// hung requests.
const OP_TIMEOUT: Duration = Duration::from_secs(5);

fn redis_err(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// Runs one Redis operation with the [`OP_TIMEOUT`] bound.
async fn bounded<T>(op: impl Future<Output = redis::RedisResult<T>>) -> StoreResult<T> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result.map_err(redis_err),
        Err(_) => Err(StoreError::Unavailable("redis: no answer in time".into())),
    }
}

/// The Redis store.
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: Scripts,
    keys: Keys,
    bus: EventBus,
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`) with keys under `{name}:`,
    /// and starts the change subscription and the watch refresher.
    pub async fn open(url: &str, name: &str, bus: EventBus) -> StoreResult<Arc<RedisStore>> {
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
        });
        pubsub::spawn(client, store.keys.clone(), bus, Arc::downgrade(&store));
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
    /// then claims as `claim` asks (the claimed jobs, announced here).
    async fn exchange(
        &self,
        attempts: &[(ClaimRef, &Outcome)],
        reply: &str,
        now: Millis,
        claim: Option<&ClaimParams>,
    ) -> StoreResult<(Vec<Value>, Vec<Claimed>)> {
        let mut args = vec![now.to_string(), reply.into(), attempts.len().to_string()];
        for (claim, outcome) in attempts {
            push_finish_args(&mut args, *claim, outcome);
        }
        let tokens: Vec<Uuid> = match claim {
            Some(params) => {
                args.extend([
                    params.worker_id.clone(),
                    params.max_jobs.to_string(),
                    params.global_max.to_string(),
                    params.per_user_max.to_string(),
                    params.lease_until.to_string(),
                    decode::CLAIMED_FIELDS.len().to_string(),
                ]);
                args.extend(decode::CLAIMED_FIELDS.map(String::from));
                (0..params.max_jobs).map(|_| Uuid::new_v4()).collect()
            }
            None => {
                args.extend(["", "0", "0", "0", "0"].map(String::from));
                Vec::new()
            }
        };
        args.extend(tokens.iter().map(Uuid::to_string));
        let mut parts = decode::array(self.run(&self.scripts.exchange, args).await?)?.into_iter();
        let finished = decode::array(parts.next().unwrap_or(Value::Nil))?;
        let mut claimed = Vec::new();
        for (item, token) in decode::array(parts.next().unwrap_or(Value::Nil))?
            .into_iter()
            .zip(tokens)
        {
            let mut job = decode::claimed_job(item)?;
            if let Some(params) = claim {
                job.start_attempt(&params.worker_id, now);
            }
            self.bus.publish(&job);
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

    /// Refreshes the watch registrations of everything this process watches.
    async fn refresh_watches(&self) -> StoreResult<()> {
        let ids = self.bus.announced_ids();
        if ids.is_empty() {
            return Ok(());
        }
        let expiry = now_millis() + WATCH_TTL.as_millis() as Millis;
        let members: Vec<(Millis, String)> =
            ids.iter().map(|id| (expiry, id.to_string())).collect();
        let mut conn = self.conn();
        bounded(conn.zadd_multiple::<_, _, _, ()>(self.keys.named("watched"), &members)).await
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Decodes `{'ok', job...} | {'not_found'} | {'conflict', status}`.
fn checked_job(id: JobId, reply: Value) -> StoreResult<Job> {
    let items = decode::array(reply)?;
    let tag = items.first().and_then(decode::text).unwrap_or_default();
    match tag.as_str() {
        "ok" => decode::job(&decode::Fields::of(items.get(1..).unwrap_or_default())),
        "not_found" => Err(StoreError::NotFound(id)),
        "conflict" => {
            let current = items
                .get(1)
                .and_then(decode::text)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Unavailable("redis: bad conflict reply".into()))?;
            Err(StoreError::Conflict { id, current })
        }
        other => Err(StoreError::Unavailable(format!(
            "redis: unexpected reply {other}"
        ))),
    }
}

/// The six `finish_attempts.lua` values of one attempt.
fn push_finish_args(args: &mut Vec<String>, claim: ClaimRef, outcome: &Outcome) {
    let (status, result, error, scheduled_for) = match outcome {
        Outcome::Completed { result } => (
            JobStatus::Completed,
            result.to_string(),
            String::new(),
            None,
        ),
        Outcome::Failed {
            error,
            retry_at: Some(at),
        } => (
            JobStatus::Scheduled,
            String::new(),
            error.clone(),
            Some(*at),
        ),
        Outcome::Failed {
            error,
            retry_at: None,
        } => (JobStatus::Failed, String::new(), error.clone(), None),
    };
    args.extend([
        claim.job_id.to_string(),
        claim.token.to_string(),
        status.as_str().into(),
        result,
        error,
        opt(scheduled_for),
    ]);
}

/// A completed job as `finish_attempts.lua` left it, built from the claimed
/// job and the outcome (the script answered with the revision only).
fn completed_snapshot(item: &Finish, revision: i64, now: Millis) -> Job {
    let mut job = (*item.job).clone();
    job.status = JobStatus::Completed;
    if let Outcome::Completed { result } = &item.outcome {
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
fn fenced_job(id: JobId, reply: Value) -> StoreResult<Job> {
    let items = decode::array(reply)?;
    if items.is_empty() {
        return Err(StoreError::ClaimLost(id));
    }
    decode::job(&decode::Fields::of(&items))
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> StoreResult<()> {
        bounded(redis::cmd("PING").query_async::<String>(&mut self.conn()))
            .await
            .map(drop)
    }

    async fn watch(&self, id: JobId) -> StoreResult<(JobWatch, Job)> {
        // Watch, then announce (scripts publish changes of announced jobs
        // only), then read: no change can fall between the three.
        let watch = self.bus.watch(id);
        let expiry = now_millis() + WATCH_TTL.as_millis() as Millis;
        let mut conn = self.conn();
        bounded(conn.zadd::<_, _, _, ()>(self.keys.named("watched"), id.to_string(), expiry))
            .await?;
        Ok((watch, self.get(id).await?))
    }

    async fn submit_all(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Job>> {
        let now = now_millis();
        let mut args = vec![now.to_string(), jobs.len().to_string()];
        for new in &jobs {
            args.extend([
                new.id.to_string(),
                new.job_type.clone(),
                new.user_id.clone(),
                new.priority.to_string(),
                new.parameters.to_string(),
                new.max_attempts.to_string(),
                opt(new.timeout_seconds),
                opt(new.run_at.filter(|at| *at > now)),
                new.depends_on.len().to_string(),
            ]);
            args.extend(new.depends_on.iter().map(JobId::to_string));
        }
        let replies = decode::array(self.run(&self.scripts.submit, args).await?)?;
        if let Some(refusal) = replies.first().and_then(decode::text) {
            let id = replies
                .get(1)
                .and_then(decode::text)
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| StoreError::Unavailable("redis: bad submit reply".into()))?;
            return Err(match refusal.as_str() {
                "missing" => StoreError::UnknownDependency(id),
                _ => StoreError::Unavailable(format!("redis: job id {id} is taken")),
            });
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
        Ok(submitted)
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
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
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<ListPage> {
        let reply = self
            .run(
                &self.scripts.list,
                vec![
                    opt(query.before),
                    query.limit.to_string(),
                    opt(query.status.map(JobStatus::as_str)),
                    opt(query.user_id.as_ref()),
                    opt(query.job_type.as_ref()),
                    LIST_MAX_SCAN.to_string(),
                ],
            )
            .await?;
        let mut items = decode::array(reply)?.into_iter();
        let cursor = items
            .next()
            .as_ref()
            .and_then(decode::text)
            .and_then(|c| c.parse().ok());
        let jobs = items
            .map(decode::job_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(ListPage {
            jobs,
            next_cursor: cursor,
        })
    }

    async fn claim(&self, params: &ClaimParams) -> StoreResult<Vec<Claimed>> {
        let (_, claimed) = self
            .exchange(&[], "compact", params.now, Some(params))
            .await?;
        Ok(claimed)
    }

    async fn report_progress(&self, claim: ClaimRef, progress: Progress) -> StoreResult<Job> {
        let progress = progress.clamped();
        let reply = self
            .run(
                &self.scripts.progress,
                vec![
                    claim.job_id.to_string(),
                    claim.token.to_string(),
                    progress.fraction.to_string(),
                    opt(progress.items_processed),
                    opt(progress.total_items),
                    now_millis().to_string(),
                ],
            )
            .await?;
        let job = fenced_job(claim.job_id, reply)?;
        self.bus.publish(&job);
        Ok(job)
    }

    async fn finish(&self, claim: ClaimRef, outcome: Outcome, now: Millis) -> StoreResult<Job> {
        let (finished, _) = self
            .exchange(&[(claim, &outcome)], "full", now, None)
            .await?;
        let item = finished.into_iter().next().unwrap_or(Value::Nil);
        let job = fenced_job(claim.job_id, item)?;
        self.bus.publish(&job);
        Ok(job)
    }

    async fn finish_and_claim(
        &self,
        items: &[Finish],
        now: Millis,
        refill: Option<&ClaimParams>,
    ) -> StoreResult<Exchanged> {
        let attempts: Vec<(ClaimRef, &Outcome)> = items
            .iter()
            .map(|item| (item.claim, &item.outcome))
            .collect();
        let (replies, claimed) = self.exchange(&attempts, "compact", now, refill).await?;
        let mut finished = Vec::with_capacity(items.len());
        for (item, entry) in items.iter().zip(replies) {
            let result = match entry {
                Value::Int(revision) => Ok(completed_snapshot(item, revision, now)),
                other => fenced_job(item.claim.job_id, other),
            };
            if let Ok(job) = &result {
                self.bus.publish(job);
            }
            finished.push(result);
        }
        Ok(Exchanged { finished, claimed })
    }

    async fn release(&self, claims: &[ClaimRef], now: Millis) -> StoreResult<()> {
        let mut args = vec![now.to_string()];
        for claim in claims {
            args.push(claim.job_id.to_string());
            args.push(claim.token.to_string());
        }
        self.run(&self.scripts.release, args).await?;
        for claim in claims {
            if let Ok(job) = self.get(claim.job_id).await {
                self.bus.publish(&job);
            }
        }
        self.bus.notify_work();
        Ok(())
    }

    async fn cancel(&self, id: JobId, now: Millis) -> StoreResult<Job> {
        let reply = self
            .run(&self.scripts.cancel, vec![id.to_string(), now.to_string()])
            .await?;
        let job = checked_job(id, reply)?;
        self.bus.publish(&job);
        Ok(job)
    }

    async fn restart(&self, id: JobId, parameters: Option<Json>, now: Millis) -> StoreResult<Job> {
        let reply = self
            .run(
                &self.scripts.restart,
                vec![id.to_string(), now.to_string(), opt(parameters)],
            )
            .await?;
        let job = checked_job(id, reply)?;
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
        let mut args = vec![
            worker.worker_id.clone(),
            worker.host.clone(),
            worker.pid.to_string(),
            worker.started_at.to_string(),
            worker.concurrency.to_string(),
            lease_until.to_string(),
            now.to_string(),
        ];
        for claim in held {
            args.push(claim.job_id.to_string());
            args.push(claim.token.to_string());
        }
        let lost = decode::ids(self.run(&self.scripts.heartbeat, args).await?)?;
        // Keep this process's watch registrations alive with the heartbeat.
        if let Err(e) = self.refresh_watches().await {
            tracing::warn!(error = %e, "could not refresh watch registrations");
        }
        Ok(lost)
    }

    async fn unregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        bounded(
            redis::pipe()
                .atomic()
                .del(self.keys.named(&format!("worker:{worker_id}")))
                .zrem(self.keys.named("workers"), worker_id)
                .query_async::<()>(&mut self.conn()),
        )
        .await
    }

    async fn promote_due(&self, now: Millis) -> StoreResult<usize> {
        let promoted = self
            .run(&self.scripts.promote, vec![now.to_string()])
            .await?;
        redis::FromRedisValue::from_redis_value(promoted)
            .map_err(|e| StoreError::Unavailable(format!("redis: {e}")))
    }

    async fn recover_expired(&self, params: &RecoverParams) -> StoreResult<RecoverReport> {
        let mut args = vec![
            params.now.to_string(),
            params.max_interruptions.to_string(),
            params.stale_workers_before.to_string(),
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
    }

    async fn cleanup(&self, params: &CleanupParams) -> StoreResult<CleanupReport> {
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
                        params.completed_before.to_string(),
                        params.failed_before.to_string(),
                        CLEANUP_BATCH.to_string(),
                    ],
                )
                .await?,
            )
            .map_err(|e| StoreError::Unavailable(format!("redis: {e}")))?;
            report.jobs_deleted += deleted;
            if deleted < CLEANUP_BATCH {
                break;
            }
        }
        let cleared = self
            .run(
                &self.scripts.cleanup_finish,
                vec![
                    params.now.to_string(),
                    params.orphaned_locks_before.to_string(),
                    token,
                ],
            )
            .await?;
        report.locks_cleared = redis::FromRedisValue::from_redis_value(cleared)
            .map_err(|e| StoreError::Unavailable(format!("redis: {e}")))?;
        Ok(report)
    }

    async fn stats(&self, active_since: Millis) -> StoreResult<StoreStats> {
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
        let reply = self.run(&self.scripts.workers, Vec::new()).await?;
        decode::array(reply)?
            .into_iter()
            .map(decode::worker)
            .collect()
    }

    async fn next_due(&self) -> StoreResult<Option<Millis>> {
        let mut conn = self.conn();
        let first: Vec<(String, f64)> =
            bounded(conn.zrange_withscores(self.keys.named("scheduled"), 0, 0)).await?;
        Ok(first.first().map(|(_, due)| *due as Millis))
    }
}
