//! Expiry (`NewJob::expires_in`, `Store::expire_due`): a job still pending
//! or scheduled at its deadline, never started, is cancelled with the
//! error `expired` and its waiting dependents follow; a running job does
//! not expire; a claim never starts a job past its deadline; a restart
//! clears the deadline.

use jobd::model::{JobStatus, NewJob};
use jobd::store::Outcome;

use super::*;

/// A job of `user` that must start within `within` of its submission.
fn expiring(user: &str, within: Millis) -> NewJob {
    NewJob {
        expires_in: Some(within),
        ..new_job(user)
    }
}

fn ids(jobs: &[Job]) -> Vec<JobId> {
    let mut ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    ids.sort();
    ids
}

pub async fn pending_and_scheduled_jobs_expire_at_their_deadline(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let now = store.clock().now();
    let pending = store.submit(expiring("u", 10 * SECOND)).await.unwrap();
    assert_eq!(pending.expires_at, Some(now + 10 * SECOND));
    assert_eq!(
        store.get(pending.id).await.unwrap().expires_at,
        Some(now + 10 * SECOND)
    );
    let scheduled = NewJob {
        run_at: Some(now + HOUR),
        ..expiring("v", 10 * SECOND)
    };
    let scheduled = store.submit(scheduled).await.unwrap();
    assert_eq!(scheduled.status, JobStatus::Scheduled);
    let later = store.submit(expiring("w", HOUR)).await.unwrap();
    let never = store.submit(new_job("x")).await.unwrap();

    backend.advance(10 * SECOND - 1);
    assert!(store.expire_due().await.unwrap().is_empty(), "not yet");
    backend.advance(1);
    let expired = store.expire_due().await.unwrap();
    assert_eq!(ids(&expired), ids(&[pending.clone(), scheduled.clone()]));
    for id in [pending.id, scheduled.id] {
        let job = store.get(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Cancelled);
        assert_eq!(job.error.as_deref(), Some("expired"));
        assert_eq!(job.completed_at, Some(now + 10 * SECOND));
    }
    assert!(store.expire_due().await.unwrap().is_empty(), "once");
    assert_eq!(count(store, JobStatus::Cancelled).await, 2);
    assert_eq!(count(store, JobStatus::Scheduled).await, 0);
    assert_eq!(count(store, JobStatus::Pending).await, 2);
    // The others still run.
    let claimed = store.claim(&claim_params("w", 10)).await.unwrap();
    assert_eq!(
        ids(&claimed.into_iter().map(|c| c.job).collect::<Vec<_>>()),
        ids(&[later, never])
    );
}

pub async fn a_running_job_does_not_expire(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let job = store.submit(expiring("u", SECOND)).await.unwrap();
    let claimed = claim_only(store, job.id).await;
    backend.advance(2 * SECOND);
    assert!(store.expire_due().await.unwrap().is_empty());
    assert_eq!(store.get(job.id).await.unwrap().status, JobStatus::Running);
    // Nor its retry, scheduled after it started.
    let retry_at = store.clock().now() + SECOND;
    store
        .finish(
            claimed.claim,
            Outcome::Failed {
                error: "again".into(),
                retry_at: Some(retry_at),
            },
        )
        .await
        .unwrap();
    assert!(store.expire_due().await.unwrap().is_empty());
    backend.advance(SECOND);
    let again = claim_only(store, job.id).await;
    assert_eq!(again.job.attempts, 2);
}

pub async fn an_expired_jobs_dependents_are_cancelled(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let first = store.submit(expiring("u", SECOND)).await.unwrap();
    let second = store.submit(dependent("u", &[first.id])).await.unwrap();
    let third = store.submit(dependent("u", &[second.id])).await.unwrap();
    backend.advance(SECOND);
    let expired = store.expire_due().await.unwrap();
    assert_eq!(ids(&expired), vec![first.id]);
    for (id, by) in [(second.id, first.id), (third.id, second.id)] {
        let job = store.get(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Cancelled, "{job:?}");
        assert_eq!(job.cancelled_by, Some(by));
    }
    assert_eq!(count(store, JobStatus::Cancelled).await, 3);
    assert_eq!(count(store, JobStatus::Scheduled).await, 0);
}

pub async fn a_claim_never_starts_a_job_past_its_deadline(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let now = store.clock().now();
    let stale = store.submit(expiring("u", SECOND)).await.unwrap();
    let due_late = NewJob {
        run_at: Some(now + 2 * SECOND),
        ..expiring("v", 2 * SECOND)
    };
    let due_late = store.submit(due_late).await.unwrap();
    backend.advance(5 * SECOND);
    // No expiry pass ran: the claim itself expires them.
    assert!(
        store
            .claim(&claim_params("w", 10))
            .await
            .unwrap()
            .is_empty()
    );
    for id in [stale.id, due_late.id] {
        let job = store.get(id).await.unwrap();
        assert_eq!(
            (job.status, job.error.as_deref()),
            (JobStatus::Cancelled, Some("expired"))
        );
    }
    // A restart clears the deadline: the job runs.
    let restarted = store.restart(stale.id, None).await.unwrap();
    assert_eq!(restarted.expires_at, None);
    assert!(store.expire_due().await.unwrap().is_empty());
    claim_only(store, stale.id).await;
}
