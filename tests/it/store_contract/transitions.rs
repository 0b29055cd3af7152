//! Every verb that changes a job, from every starting status, as tables in
//! the manner of river's `job_update.go`. For each case, on a fresh store:
//! the fixture job is driven into the starting status ([`job_in`]), the
//! verb runs once, and then
//! - its answer is the table's (the job, or which `StoreError`);
//! - the job `get` reads is, field by field, the job before with exactly
//!   the verb's changes ([`Verb::expect`]), the revision increased; a
//!   refused or no-op verb leaves it equal to the job before, whole;
//! - the job the verb returned (if it returns one) equals what `get` reads,
//!   whole;
//! - this process heard the new job: its watchers (after `announce_watch`)
//!   and the all-jobs feed (`EventBus::subscribe_all`) have it at its new
//!   revision, equal to what `get` reads; after a refused or no-op verb,
//!   nothing newer was heard.
//!
//! Every `Job` field is compared, timestamps included: both backends fill
//! all of them, and take every time from the backend's clock.

use jobd::model::{Job, JobStatus, Millis, Progress};
use jobd::store::{ClaimRef, Outcome, StoreError, StoreResult};
use serde_json::json;

use super::*;

/// A verb that changes a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Cancel,
    /// Restart with new parameters `{"fresh": true}`.
    Restart,
    /// Release under the job's claim (or a forged one).
    Release,
    /// Finish as completed with result `"r"`.
    FinishCompleted,
    /// Finish as failed with error `"e"`, retry an hour later.
    FinishRetry,
    /// Finish as failed with error `"e"`, no retry.
    FinishFailed,
    /// Progress `PROGRESS` under the job's claim (or a forged one).
    ReportProgress,
    /// A claim by worker `w2` of up to two jobs.
    Claim,
    /// `promote_due`, the clock moved two hours ahead.
    PromoteDue,
    /// `recover_expired`, the clock moved past the lease, interruptions
    /// allowed.
    RecoverExpired,
    /// `recover_expired`, the clock moved past the lease, no interruption
    /// allowed.
    RecoverAsWorkerLost,
}

/// What a verb does from one starting status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// It succeeds and the job becomes this status.
    Becomes(JobStatus),
    /// `StoreError::Conflict` naming the job's status; the job is unchanged.
    Conflict,
    /// `StoreError::ClaimLost`; the job is unchanged.
    ClaimLost,
    /// It succeeds without touching the job (a release of a claim not
    /// held, a claim or promotion or recovery that finds nothing to do).
    Untouched,
}

use Start::*;
use Then::*;

const PROGRESS: Progress = Progress {
    fraction: 0.5,
    items_processed: Some(2),
    total_items: Some(4),
};

/// The progress the running fixture reports, so that resets show.
const FIXTURE_PROGRESS: Progress = Progress {
    fraction: 0.25,
    items_processed: Some(1),
    total_items: Some(4),
};

/// When a retry is due, after the verb's `now`.
const RETRY_IN: Millis = HOUR;

/// How far past now `promote_due` looks: past the scheduled fixture's
/// hour, before its blocker's day.
const PROMOTE_AHEAD: Millis = 2 * HOUR;

/// When the recovery runs: the fixture's lease has expired.
const RECOVER_AFTER: Millis = LEASE + SECOND;

impl Verb {
    /// Runs the verb on `job` (moving the clock first if the verb says
    /// so); checks the verb's own answer (counts, reports, claimed lists)
    /// against `then`, and returns the job it returned, if it returns one.
    async fn apply(
        self,
        backend: &dyn Backend,
        handle: &Handle,
        job: &Job,
        claim: Option<ClaimRef>,
        then: Then,
    ) -> StoreResult<Option<Job>> {
        let now = handle.store.clock().now();
        let store = handle.store.as_ref();
        let claim = claim.unwrap_or(ClaimRef {
            job_id: job.id,
            token: uuid::Uuid::new_v4(),
        });
        let changed = matches!(then, Becomes(_));
        let finish = |outcome| async move { store.finish(claim, outcome).await.map(Some) };
        match self {
            Verb::Cancel => store.cancel(job.id).await.map(Some),
            Verb::Restart => store
                .restart(job.id, Some(json!({"fresh": true})))
                .await
                .map(Some),
            Verb::Release => store.release(&[claim]).await.map(|()| None),
            Verb::FinishCompleted => finish(Outcome::Completed { result: json!("r") }).await,
            Verb::FinishRetry => {
                finish(Outcome::Failed {
                    error: "e".into(),
                    retry_at: Some(now + RETRY_IN),
                })
                .await
            }
            Verb::FinishFailed => {
                finish(Outcome::Failed {
                    error: "e".into(),
                    retry_at: None,
                })
                .await
            }
            Verb::ReportProgress => store.report_progress(claim, PROGRESS).await.map(Some),
            Verb::Claim => {
                let claimed = store.claim(&claim_params("w2", 2)).await?;
                let ids: Vec<_> = claimed.iter().map(|c| c.job.id).collect();
                let expected = if changed { vec![job.id] } else { vec![] };
                assert_eq!(ids, expected, "claimed");
                Ok(claimed.into_iter().next().map(|c| c.job))
            }
            Verb::PromoteDue => {
                backend.advance(PROMOTE_AHEAD);
                let promoted = store.promote_due().await?;
                assert_eq!(promoted, usize::from(changed), "promoted");
                Ok(None)
            }
            Verb::RecoverExpired | Verb::RecoverAsWorkerLost => {
                backend.advance(RECOVER_AFTER);
                let allowed = if self == Verb::RecoverExpired { 3 } else { 0 };
                let report = store.recover_expired(&recover_params(allowed)).await?;
                let ours = if changed { vec![job.id] } else { vec![] };
                let (requeued, failed) = match then {
                    Becomes(JobStatus::Failed) => (vec![], ours),
                    _ => (ours, vec![]),
                };
                assert_eq!((report.requeued, report.failed), (requeued, failed));
                Ok(None)
            }
        }
    }

    /// The job after the verb succeeded on `before`, run when the clock
    /// said `now`: every field the verb sets, the rest as it was. `after`
    /// supplies what the store decides itself (the new revision).
    fn expect(self, before: &Job, after: &Job, now: Millis) -> Job {
        let mut job = before.clone();
        job.revision = after.revision;
        job.updated_at = now;
        match self {
            Verb::Cancel => {
                job.status = JobStatus::Cancelled;
                job.completed_at = Some(now);
                job.worker_id = None;
            }
            Verb::Restart => {
                job.status = JobStatus::Pending;
                job.parameters = json!({"fresh": true});
                job.result = None;
                job.error = None;
                job.progress = Progress::default();
                job.attempts = 0;
                job.interruptions = 0;
                job.scheduled_for = None;
                job.started_at = None;
                job.completed_at = None;
                job.worker_id = None;
                job.cancelled_by = None;
                job.waiting_dependencies = 0;
            }
            Verb::Release => {
                job.status = JobStatus::Pending;
                job.attempts -= 1;
                job.progress = Progress::default();
                job.started_at = None;
                job.worker_id = None;
            }
            Verb::FinishCompleted => {
                job.status = JobStatus::Completed;
                job.result = Some(json!("r"));
                job.error = None;
                job.progress.fraction = 1.0;
                job.completed_at = Some(now);
                job.worker_id = None;
            }
            Verb::FinishRetry => {
                job.status = JobStatus::Scheduled;
                job.error = Some("e".into());
                job.scheduled_for = Some(now + RETRY_IN);
                job.worker_id = None;
            }
            Verb::FinishFailed => {
                job.status = JobStatus::Failed;
                job.error = Some("e".into());
                job.completed_at = Some(now);
                job.worker_id = None;
            }
            Verb::ReportProgress => {
                job.progress = PROGRESS;
            }
            Verb::Claim => {
                job.status = JobStatus::Running;
                job.attempts += 1;
                job.started_at = Some(now);
                job.completed_at = None;
                job.error = None;
                job.worker_id = Some("w2".into());
            }
            Verb::PromoteDue => {
                job.status = JobStatus::Pending;
                job.updated_at = now + PROMOTE_AHEAD;
            }
            Verb::RecoverExpired => {
                let at = now + RECOVER_AFTER;
                job.status = JobStatus::Pending;
                job.attempts -= 1;
                job.interruptions += 1;
                job.progress = Progress::default();
                job.worker_id = None;
                job.updated_at = at;
            }
            Verb::RecoverAsWorkerLost => {
                let at = now + RECOVER_AFTER;
                job.status = JobStatus::Failed;
                job.interruptions += 1;
                job.error = Some("worker lost: the job's worker stopped responding 1 times".into());
                job.completed_at = Some(at);
                job.worker_id = None;
                job.updated_at = at;
            }
        }
        job
    }
}

/// Runs one verb from every starting status, as `table` says.
pub async fn from_every_status(backend: &dyn Backend, verb: Verb, table: [(Start, Then); 7]) {
    let starts: Vec<Start> = table.iter().map(|(start, _)| *start).collect();
    assert_eq!(starts, Start::ALL, "one row per starting status, in order");
    for (start, then) in table {
        from_status(backend, verb, start, then).await;
    }
}

/// One case of a verb table.
pub async fn from_status(backend: &dyn Backend, verb: Verb, start: Start, then: Then) {
    let case = format!("{verb:?} from {start:?}");
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let (mut before, claim) = job_in(store, start).await;
    if start == Start::Running {
        let claim = claim.expect("a running job has a claim");
        before = store
            .report_progress(claim, FIXTURE_PROGRESS)
            .await
            .unwrap();
    }
    let mut listener = Listener::on(&handle, before.id).await;
    let now = store.clock().now();
    let answer = verb.apply(backend, &handle, &before, claim, then).await;
    let after = store.get(before.id).await.unwrap();
    match then {
        Becomes(status) => {
            let returned = answer.unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(after.status, status, "{case}: status");
            assert!(
                after.revision > before.revision,
                "{case}: the revision increases"
            );
            assert_eq!(
                after,
                verb.expect(&before, &after, now),
                "{case}: what the job becomes (left: get, right: expected)"
            );
            if let Some(returned) = returned {
                assert_eq!(
                    returned, after,
                    "{case}: the returned job is what get reads (left: returned)"
                );
            }
            let heard = listener.watchers_get(&after).await;
            assert_eq!(*heard, after, "{case}: what the job's watchers heard");
            let fed = listener.feed_gets(&after).await;
            assert_eq!(*fed, after, "{case}: what the all-jobs feed carried");
        }
        Conflict => {
            assert!(
                matches!(answer, Err(StoreError::Conflict { id, current })
                    if id == before.id && current == start.status()),
                "{case}: {answer:?}"
            );
            assert_eq!(after, before, "{case}: unchanged");
            listener.heard_nothing_after(&before);
        }
        ClaimLost => {
            assert!(
                matches!(answer, Err(StoreError::ClaimLost(id)) if id == before.id),
                "{case}: {answer:?}"
            );
            assert_eq!(after, before, "{case}: unchanged");
            listener.heard_nothing_after(&before);
        }
        Untouched => {
            let returned = answer.unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(returned, None, "{case}");
            assert_eq!(after, before, "{case}: unchanged");
            listener.heard_nothing_after(&before);
        }
    }
}

/// Promotion publishes the promoted job on this process's bus, as every
/// other write does (the trait: "every successful write notifies the
/// process's EventBus"); the table's `PromoteDue` from `ScheduledByTime`
/// case, feed part.
pub async fn promotion_is_published_here(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let (job, _) = job_in(handle.store.as_ref(), Start::ScheduledByTime).await;
    let mut listener = Listener::on(&handle, job.id).await;
    backend.advance(PROMOTE_AHEAD);
    let promoted = handle.store.promote_due().await;
    assert_eq!(promoted.unwrap(), 1);
    let after = handle.store.get(job.id).await.unwrap();
    assert_eq!(after.status, JobStatus::Pending);
    let fed = listener.feed_gets(&after).await;
    assert_eq!(*fed, after);
}

/// `finish_and_claim` returns each ended attempt's job as `get` then reads
/// it, whole: progress reported since the claim included.
pub async fn finish_and_claim_returns_what_is_stored(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let (_, claim) = job_in(store, Start::Running).await;
    let claim = claim.unwrap();
    store
        .report_progress(claim, FIXTURE_PROGRESS)
        .await
        .unwrap();
    let (held, _) = job_in(store, Start::Running).await;
    let item = jobd::store::Finish {
        claim,
        outcome: Outcome::Completed { result: json!("r") },
    };
    let exchanged = store.finish_and_claim(&[item], None).await.unwrap();
    let returned = exchanged.finished[0].as_ref().unwrap();
    assert_eq!(*returned, store.get(claim.job_id).await.unwrap());
    assert_eq!(store.get(held.id).await.unwrap(), held);
}

/// An attempt's end forgets the due time the job last waited for:
/// `scheduled_for` is the time a scheduled job becomes due, and a
/// completed or failed job is due for nothing.
pub async fn an_ended_attempt_forgets_its_due_time(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    for outcome in [
        Outcome::Completed { result: json!("r") },
        Outcome::Failed {
            error: "e".into(),
            retry_at: None,
        },
    ] {
        let (job, _) = job_in(store, Start::ScheduledByTime).await;
        backend.clock().set(job.scheduled_for.unwrap());
        assert_eq!(store.promote_due().await.unwrap(), 1, "due at its time");
        let claimed = claim_only(store, job.id).await;
        assert_eq!(claimed.job.scheduled_for, job.scheduled_for);
        let ended = store.finish(claimed.claim, outcome).await.unwrap();
        assert_eq!(ended.scheduled_for, None, "{:?}", ended.status);
        assert_eq!(store.get(job.id).await.unwrap(), ended);
    }
}

/// Cancel applies to every job not terminal; a running job loses its claim.
pub async fn cancel_from_every_status(backend: &dyn Backend) {
    #[rustfmt::skip]
    let table = [
        (Pending,              Becomes(JobStatus::Cancelled)),
        (ScheduledByTime,      Becomes(JobStatus::Cancelled)),
        (WaitingForDependency, Becomes(JobStatus::Cancelled)),
        (Running,              Becomes(JobStatus::Cancelled)),
        (Completed,            Conflict),
        (Failed,               Conflict),
        (Cancelled,            Conflict),
    ];
    from_every_status(backend, Verb::Cancel, table).await;
}

/// Restart applies to failed and cancelled jobs only, and resets every
/// trace of their runs.
pub async fn restart_from_every_status(backend: &dyn Backend) {
    #[rustfmt::skip]
    let table = [
        (Pending,              Conflict),
        (ScheduledByTime,      Conflict),
        (WaitingForDependency, Conflict),
        (Running,              Conflict),
        (Completed,            Conflict),
        (Failed,               Becomes(JobStatus::Pending)),
        (Cancelled,            Becomes(JobStatus::Pending)),
    ];
    from_every_status(backend, Verb::Restart, table).await;
}

/// Release gives a held job back with its attempt; a claim not held
/// (anything but a running job under that claim) is skipped, not refused.
pub async fn release_from_every_status(backend: &dyn Backend) {
    #[rustfmt::skip]
    let table = [
        (Pending,              Untouched),
        (ScheduledByTime,      Untouched),
        (WaitingForDependency, Untouched),
        (Running,              Becomes(JobStatus::Pending)),
        (Completed,            Untouched),
        (Failed,               Untouched),
        (Cancelled,            Untouched),
    ];
    from_every_status(backend, Verb::Release, table).await;
}

/// The claim's table for the three ends of an attempt: only the running
/// job's claim may end it.
fn finish_table(ends_as: JobStatus) -> [(Start, Then); 7] {
    #[rustfmt::skip]
    let table = [
        (Pending,              ClaimLost),
        (ScheduledByTime,      ClaimLost),
        (WaitingForDependency, ClaimLost),
        (Running,              Becomes(ends_as)),
        (Completed,            ClaimLost),
        (Failed,               ClaimLost),
        (Cancelled,            ClaimLost),
    ];
    table
}

/// Completing: result stored, progress 1, the claim spent.
pub async fn finish_completed_from_every_status(backend: &dyn Backend) {
    let table = finish_table(JobStatus::Completed);
    from_every_status(backend, Verb::FinishCompleted, table).await;
}

/// Failing with a retry: scheduled for the retry time, error kept.
pub async fn finish_failed_with_retry_from_every_status(backend: &dyn Backend) {
    let table = finish_table(JobStatus::Scheduled);
    from_every_status(backend, Verb::FinishRetry, table).await;
}

/// Failing for good: failed, error kept, finished now.
pub async fn finish_failed_for_good_from_every_status(backend: &dyn Backend) {
    let table = finish_table(JobStatus::Failed);
    from_every_status(backend, Verb::FinishFailed, table).await;
}

/// Progress is recorded only under the running job's claim.
pub async fn report_progress_from_every_status(backend: &dyn Backend) {
    let table = finish_table(JobStatus::Running);
    from_every_status(backend, Verb::ReportProgress, table).await;
}

/// A claim takes pending jobs only; nothing else is claimable.
pub async fn claim_from_every_status(backend: &dyn Backend) {
    #[rustfmt::skip]
    let table = [
        (Pending,              Becomes(JobStatus::Running)),
        (ScheduledByTime,      Untouched),
        (WaitingForDependency, Untouched),
        (Running,              Untouched),
        (Completed,            Untouched),
        (Failed,               Untouched),
        (Cancelled,            Untouched),
    ];
    from_every_status(backend, Verb::Claim, table).await;
}

/// Promotion makes due scheduled jobs pending; a job waiting for a
/// dependency is not due whatever the time.
pub async fn promote_due_from_every_status(backend: &dyn Backend) {
    #[rustfmt::skip]
    let table = [
        (Pending,              Untouched),
        (ScheduledByTime,      Becomes(JobStatus::Pending)),
        (WaitingForDependency, Untouched),
        (Running,              Untouched),
        (Completed,            Untouched),
        (Failed,               Untouched),
        (Cancelled,            Untouched),
    ];
    from_every_status(backend, Verb::PromoteDue, table).await;
}

fn recover_table(running_becomes: JobStatus) -> [(Start, Then); 7] {
    #[rustfmt::skip]
    let table = [
        (Pending,              Untouched),
        (ScheduledByTime,      Untouched),
        (WaitingForDependency, Untouched),
        (Running,              Becomes(running_becomes)),
        (Completed,            Untouched),
        (Failed,               Untouched),
        (Cancelled,            Untouched),
    ];
    table
}

/// Recovery requeues a running job whose lease expired, giving its attempt
/// back and counting an interruption; no other job is touched.
pub async fn recover_expired_from_every_status(backend: &dyn Backend) {
    let table = recover_table(JobStatus::Pending);
    from_every_status(backend, Verb::RecoverExpired, table).await;
}

/// Recovery fails a job interrupted more than allowed, as "worker lost".
pub async fn recover_expired_as_worker_lost_from_every_status(backend: &dyn Backend) {
    let table = recover_table(JobStatus::Failed);
    from_every_status(backend, Verb::RecoverAsWorkerLost, table).await;
}

/// What `submit` returns is what is stored, whole, in each of the forms a
/// new job takes (pending, scheduled by time, waiting, cancelled by a
/// failed dependency), and this process hears it.
pub async fn submit_returns_what_is_stored(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let (failed, _) = job_in(store, Start::Failed).await;
    let (waiting_on, _) = job_in(store, Start::ScheduledByTime).await;
    let now = store.clock().now();
    let shapes = [
        new_job("u"),
        jobd::model::NewJob {
            run_at: Some(now + HOUR),
            priority: 3,
            max_attempts: 4,
            timeout_seconds: Some(2.5),
            parameters: json!({"x": [1, "two"]}),
            ..new_job("u")
        },
        dependent("u", &[waiting_on.id]),
        dependent("u", &[failed.id]),
    ];
    let expected = [
        JobStatus::Pending,
        JobStatus::Scheduled,
        JobStatus::Scheduled,
        JobStatus::Cancelled,
    ];
    let mut feed = handle.bus.subscribe_all();
    for (new, status) in shapes.into_iter().zip(expected) {
        let returned = store.submit(new.clone()).await.unwrap();
        let read = store.get(new.id).await.unwrap();
        assert_eq!(returned, read, "the returned job is what get reads");
        assert_eq!(read.status, status);
        assert_eq!(
            (read.attempts, read.interruptions, read.revision),
            (0, 0, 1)
        );
        assert_eq!((read.created_at, read.updated_at), (now, now));
        let fed = feed.recv().await.unwrap();
        assert_eq!(*fed, read, "the all-jobs feed carried the new job");
    }
}
