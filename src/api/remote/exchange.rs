//! `exchange`: a remote worker's one call for everything on the hot path.
//! It renews the worker's registration and leases (the heartbeat), ends
//! attempts and claims their replacements in one store step (as the
//! built-in worker's completer does), and, when it has nothing to answer,
//! waits for work of the worker's types or for one of its jobs to be
//! stopped: the long-poll that is both the claim and the cancel channel.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, State};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use utoipa::ToSchema;
use uuid::Uuid;

use super::node::{HeldChange, Listener};
use super::{ClaimBody, MAX_CONCURRENCY, Node, WorkerBody, claim_params, invalid};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::JsonBody;
use crate::api::jobs::parse_timestamp;
use crate::api::schema::{JobSchema, JobStatusSchema};
use crate::api::state::AppState;
use crate::config::Settings;
use crate::events::JobWatch;
use crate::model::{Job, JobId, JobStatus, JobView};
use crate::runtime::Retry;
use crate::runtime::attempt;
use crate::store::{
    ClaimParams, ClaimRef, Claimed, Exchanged, Finish, Outcome, Store, StoreError, WorkerInfo,
    error_chain,
};

/// Longest error text kept from a remote worker (a long traceback is cut).
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The longest an `exchange` waits: one heartbeat interval, so that a
/// waiting worker renews its registration and leases in time.
pub(crate) fn max_wait(settings: &Settings) -> Duration {
    settings.heartbeat_interval
}

/// Body of `exchange`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExchangeRequest {
    /// The registration, as `register` answered it.
    pub worker: WorkerBody,
    /// The claims the worker runs now (not those in `finished`): their
    /// leases are extended, and the call tells which to stop.
    #[serde(default)]
    pub held: Vec<ClaimBody>,
    /// Attempts that ended.
    #[serde(default)]
    pub finished: Vec<FinishedItem>,
    /// Jobs to claim now, at most the worker's concurrency (0: none).
    #[serde(default)]
    pub max_jobs: usize,
    /// When there is nothing to answer at once, wait up to this long (0 to
    /// `max_wait_seconds`) for work or a stop.
    #[serde(default)]
    pub wait_seconds: f64,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FinishedStatus {
    /// It succeeded with `result`.
    Completed,
    /// It failed with `error`.
    Failed,
}

/// One ended attempt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishedItem {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// The claim's token.
    pub token: Uuid,
    /// How it ended.
    pub status: FinishedStatus,
    /// The result (any JSON) of a completed attempt.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// What went wrong, for a failed one (cut at 64 KiB).
    pub error: Option<String>,
    /// `false`: fail for good, whatever attempts are left.
    pub retry: Option<bool>,
    /// Retry this many seconds from now (if attempts are left).
    pub retry_after_seconds: Option<f64>,
    /// Retry at this time, RFC 3339 (if attempts are left).
    pub retry_at: Option<String>,
}

/// Answer of `exchange`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct ExchangeReply {
    /// One entry per `finished` item, in order.
    pub finished: Vec<FinishedReply>,
    /// Jobs claimed for the worker: run each and quote its token.
    pub jobs: Vec<HandedJob>,
    /// Held jobs to stop now; send nothing more for them.
    pub stop: Vec<Stop>,
}

/// What became of one ended attempt.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FinishedReply {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// Its status now (`completed`, `failed`, or `scheduled` for a retry),
    /// when the attempt was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<JobStatusSchema>)]
    pub status: Option<JobStatus>,
    /// `ClaimLostError` when the claim was gone: nothing was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A job handed to the worker.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HandedJob {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// The claim's token, to quote on every update.
    pub token: Uuid,
    /// The job, parameters included.
    #[schema(value_type = JobSchema)]
    pub job: JobView,
    /// The completed jobs it depends on, with their results.
    #[schema(value_type = Vec<JobSchema>)]
    pub dependencies: Vec<JobView>,
    /// How long the attempt may run (the job's `timeout_seconds`, else its
    /// type's): past it the worker stops the handler and fails the attempt
    /// ("timed out"), which retries as any failure. Absent: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_limit_seconds: Option<f64>,
}

/// A held job the worker must stop.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Stop {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// Why.
    pub reason: StopReason,
}

/// Why a held job must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StopReason {
    /// A user cancelled it.
    Cancelled,
    /// It was recovered from this worker (its lease ended); another may
    /// run it.
    ClaimLost,
}

/// `POST /api/v1/workers/exchange`.
#[utoipa::path(
    post,
    path = "/api/v1/workers/exchange",
    tag = "workers",
    summary = "Finish, claim, renew and hear of stops, in one call",
    description = "Renews the worker's registration and the leases of its `held` claims, \
        records the `finished` attempts and claims up to `max_jobs` jobs of its types in one \
        store step (under the global and per-user limits). With nothing to answer it waits \
        up to `wait_seconds` for work (submitted on any node) or for a held job to be \
        cancelled or recovered. See docs/worker-protocol.md.",
    request_body = ExchangeRequest,
    responses(
        (status = 200, description = "Done", body = ExchangeReply),
        (status = 400, description = "`ValidationError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`: nothing was recorded; send \
            the same call again", body = ErrorBody),
    )
)]
pub(crate) async fn exchange(
    State(state): State<AppState>,
    Extension(node): Extension<Node>,
    JsonBody(body): JsonBody<ExchangeRequest>,
) -> Result<Json<ExchangeReply>, ApiError> {
    let request = body.ok_or_else(|| invalid("a JSON body with worker is required"))?;
    let info = request.worker.info(&state)?;
    let wait = wait_of(request.wait_seconds, &state.settings)?;
    if request.held.len() > MAX_CONCURRENCY || request.finished.len() > MAX_CONCURRENCY {
        return Err(invalid(format!(
            "held and finished list at most {MAX_CONCURRENCY} claims each"
        )));
    }
    if request.max_jobs > info.concurrency {
        return Err(invalid("max_jobs is more than the worker's concurrency"));
    }
    let held: Vec<ClaimRef> = request.held.iter().copied().map(ClaimRef::from).collect();
    let refill = (request.max_jobs > 0).then(|| claim_params(&state, &info, request.max_jobs));
    // Listen before acting, so nothing that happens meanwhile is missed.
    let waiting = (!wait.is_zero()).then(|| Waiting::start(&state, &node, &info, &held, wait));

    let mut reply = ExchangeReply::default();
    let lease = state.settings.lease_timeout;
    let interval = state.settings.heartbeat_interval;
    if node.renewal_due(&info.worker_id, waiting.is_some(), interval) {
        for job_id in state.store.heartbeat(&info, &held, lease).await? {
            let reason = why_lost(state.store.as_ref(), job_id).await;
            reply.stop.push(Stop { job_id, reason });
        }
    }
    let finishes = outcomes(&state, &request.finished).await?;
    let exchanged = if finishes.is_empty() && refill.is_none() {
        Exchanged::default()
    } else {
        state
            .store
            .finish_and_claim(&finishes, refill.as_ref())
            .await?
    };
    let mut handout = Handout::new(state.store.clone(), exchanged.claimed);
    for (item, result) in request.finished.iter().zip(exchanged.finished) {
        reply.finished.push(finished_reply(item.job_id, result)?);
    }
    let quiet = reply.finished.is_empty() && reply.stop.is_empty() && handout.is_empty();
    if let Some(mut waiting) = waiting.filter(|_| quiet) {
        match waiting.next(&state, &info, refill.as_ref()).await? {
            Woke::Claimed(claimed) => handout.claimed = claimed,
            Woke::Stop(stop) => reply.stop.push(stop),
            Woke::Nothing => {}
        }
    }
    // The worker's other waiting calls here watch what it now holds.
    node.tell(
        &info.worker_id,
        HeldChange {
            added: handout.ids(),
            removed: request.finished.iter().map(|item| item.job_id).collect(),
        },
    );
    reply.jobs = handout.deliver(&state).await;
    Ok(Json(reply))
}

/// The checked `wait_seconds`.
fn wait_of(seconds: f64, settings: &Settings) -> Result<Duration, ApiError> {
    let max = max_wait(settings).as_secs_f64();
    if !(0.0..=max).contains(&seconds) {
        return Err(invalid(format!("wait_seconds must be from 0 to {max}")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Why a held job's claim is gone.
async fn why_lost(store: &dyn Store, job_id: JobId) -> StopReason {
    match store.get(job_id).await {
        Ok(job) if job.status == JobStatus::Cancelled => StopReason::Cancelled,
        _ => StopReason::ClaimLost,
    }
}

/// Whether a held job's latest state means its worker must stop it.
fn stop_reason(job: &Job, worker_id: &str) -> Option<StopReason> {
    if job.status == JobStatus::Cancelled {
        Some(StopReason::Cancelled)
    } else if job.status != JobStatus::Running || job.worker_id.as_deref() != Some(worker_id) {
        Some(StopReason::ClaimLost)
    } else {
        None
    }
}

/// The store's outcome of each ended attempt. A failure follows the job
/// type's retry rule unless the worker said otherwise; the rule needs the
/// job's attempts, so a failure costs one read (success none).
async fn outcomes(state: &AppState, items: &[FinishedItem]) -> Result<Vec<Finish>, ApiError> {
    let mut finishes = Vec::with_capacity(items.len());
    for item in items {
        let claim = ClaimRef {
            job_id: item.job_id,
            token: item.token,
        };
        let outcome = match item.status {
            FinishedStatus::Completed => Outcome::Completed {
                result: item.result.clone().unwrap_or(Value::Null),
            },
            FinishedStatus::Failed => failure(state, item).await?,
        };
        finishes.push(Finish { claim, outcome });
    }
    Ok(finishes)
}

async fn failure(state: &AppState, item: &FinishedItem) -> Result<Outcome, ApiError> {
    let retry =
        match (item.retry, item.retry_after_seconds, &item.retry_at) {
            (Some(false), _, _) => Some(Retry::Never),
            (_, Some(_), Some(_)) => {
                return Err(invalid("give retry_after_seconds or retry_at, not both"));
            }
            (_, Some(seconds), None) => {
                if !(0.0..=31_536_000.0).contains(&seconds) {
                    return Err(invalid("retry_after_seconds must be from 0 to one year"));
                }
                Some(Retry::After(Duration::from_secs_f64(seconds)))
            }
            (_, None, Some(text)) => Some(Retry::At(parse_timestamp(text).ok_or_else(|| {
                invalid(format!("retry_at '{text}' is not an RFC 3339 timestamp"))
            })?)),
            (_, None, None) => None,
        };
    let mut error = item.error.clone().unwrap_or_else(|| "failed".to_owned());
    if error.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    let now = state.store.clock().now();
    match state.store.get(item.job_id).await {
        Ok(job) => {
            let base = state
                .registry
                .get(&job.job_type)
                .map_or(state.settings.retry_backoff, |t| t.retry_backoff);
            Ok(attempt::failed(&job, base, error, retry, now))
        }
        // Gone: the finish will find the claim gone too.
        Err(StoreError::NotFound(_)) => Ok(Outcome::Failed {
            error,
            retry_at: None,
        }),
        Err(e) => Err(e.into()),
    }
}

/// One ended attempt's answer: the job's status, or the lost claim.
fn finished_reply(
    job_id: JobId,
    result: Result<Job, StoreError>,
) -> Result<FinishedReply, ApiError> {
    match result {
        Ok(job) => Ok(FinishedReply {
            job_id,
            status: Some(job.status),
            error: None,
            message: None,
        }),
        Err(StoreError::ClaimLost(_) | StoreError::NotFound(_)) => {
            let lost = ApiError::ClaimLost(job_id);
            Ok(FinishedReply {
                job_id,
                status: None,
                error: Some(lost.name().to_owned()),
                message: Some(lost.to_string()),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Jobs claimed for the worker and not yet in an answer: given back to the
/// queue if the call ends before it answers (the client went away).
struct Handout {
    store: Arc<dyn Store>,
    claimed: Vec<Claimed>,
}

impl Handout {
    fn new(store: Arc<dyn Store>, claimed: Vec<Claimed>) -> Handout {
        Handout { store, claimed }
    }

    fn is_empty(&self) -> bool {
        self.claimed.is_empty()
    }

    fn ids(&self) -> Vec<JobId> {
        self.claimed.iter().map(|c| c.job.id).collect()
    }

    /// The jobs as the answer carries them, with their dependencies.
    async fn deliver(mut self, state: &AppState) -> Vec<HandedJob> {
        let now = state.store.clock().now();
        let mut jobs = Vec::with_capacity(self.claimed.len());
        for claimed in &self.claimed {
            let dependencies = if claimed.job.depends_on.is_empty() {
                Vec::new()
            } else {
                attempt::dependencies(state.store.as_ref(), &claimed.job)
                    .await
                    .iter()
                    .map(|job| job.view(now))
                    .collect()
            };
            let job_type = state.registry.get(&claimed.job.job_type);
            let time_limit = attempt::time_limit(&claimed.job, job_type);
            jobs.push(HandedJob {
                time_limit_seconds: time_limit.map(|limit| limit.as_secs_f64()),
                job_id: claimed.job.id,
                token: claimed.claim.token,
                job: claimed.job.view(now),
                dependencies,
            });
        }
        self.claimed.clear();
        jobs
    }
}

impl Drop for Handout {
    fn drop(&mut self) {
        if self.claimed.is_empty() {
            return;
        }
        let claims: Vec<ClaimRef> = self.claimed.iter().map(|c| c.claim).collect();
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.release(&claims).await {
                tracing::warn!(error = %error_chain(&e), "could not give back jobs of an abandoned exchange; their leases will expire");
            }
        });
    }
}

/// What ended a wait.
enum Woke {
    Claimed(Vec<Claimed>),
    Stop(Stop),
    Nothing,
}

/// A held job's watch, waiting for its next change.
type Watching = BoxFuture<'static, (Option<Arc<Job>>, JobWatch)>;

fn watching(mut watch: JobWatch) -> Watching {
    Box::pin(async move { (watch.changed().await, watch) })
}

/// A long-poll's ears, taken before the call acts: work signals, the
/// worker's held jobs, and its other calls here.
struct Waiting {
    until: Instant,
    work: watch::Receiver<u64>,
    listener: Listener,
    watches: FuturesUnordered<Watching>,
    finished: HashSet<JobId>,
}

impl Waiting {
    fn start(
        state: &AppState,
        node: &Node,
        info: &WorkerInfo,
        held: &[ClaimRef],
        wait: Duration,
    ) -> Waiting {
        Waiting {
            until: Instant::now() + wait,
            work: state.bus.work_signal(),
            listener: node.listen(&info.worker_id),
            watches: held
                .iter()
                .map(|claim| watching(state.bus.watch_running(claim.job_id)))
                .collect(),
            finished: HashSet::new(),
        }
    }

    /// Waits for work to claim, a held job to stop, the wait's end, or
    /// shutdown.
    async fn next(
        &mut self,
        state: &AppState,
        info: &WorkerInfo,
        refill: Option<&ClaimParams>,
    ) -> Result<Woke, ApiError> {
        loop {
            tokio::select! {
                signal = self.work.changed(), if refill.is_some() => {
                    if signal.is_err() {
                        return Ok(Woke::Nothing);
                    }
                    if let Some(params) = refill {
                        let claimed = state.store.claim(params).await?;
                        if !claimed.is_empty() {
                            return Ok(Woke::Claimed(claimed));
                        }
                    }
                }
                Some((job, watch)) = self.watches.next(), if !self.watches.is_empty() => {
                    let Some(job) = job else { continue };
                    if self.finished.contains(&job.id) {
                        continue;
                    }
                    if let Some(reason) = stop_reason(&job, &info.worker_id) {
                        return Ok(Woke::Stop(Stop { job_id: job.id, reason }));
                    }
                    self.watches.push(watching(watch));
                }
                Some(change) = self.listener.next() => {
                    self.finished.extend(change.removed);
                    for id in change.added {
                        self.watches.push(watching(state.bus.watch_running(id)));
                    }
                }
                _ = tokio::time::sleep_until(self.until) => return Ok(Woke::Nothing),
                _ = state.shutdown.cancelled() => return Ok(Woke::Nothing),
            }
        }
    }
}
