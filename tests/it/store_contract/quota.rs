//! The per-user quota of queued jobs: what counts (pending and scheduled,
//! in every form, built-in and remote), what does not (running, terminal,
//! a job cancelled at once), that a refused call stores nothing, that every
//! way out of the queue frees room and every way back takes it, and that
//! the check holds across processes at once. Each on a fresh store opened
//! with a quota ([`Backend::fresh_with_quota`]).

use jobd::model::{JobStatus, NewJob};
use jobd::store::{Outcome, Store, StoreError};

use super::*;

/// Asserts that `result` is the quota's refusal for `user` at `limit`.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, StoreError>, user: &str, limit: u64) {
    match result {
        Err(StoreError::QuotaExceeded { user_id, limit: l }) => {
            assert_eq!((user_id.as_str(), l), (user, limit));
        }
        other => panic!("expected the quota's refusal for {user}, got {other:?}"),
    }
}

/// Pending plus scheduled jobs in the store, by its counts.
async fn queued(store: &dyn Store) -> u64 {
    count(store, JobStatus::Pending).await + count(store, JobStatus::Scheduled).await
}

pub async fn the_quota_counts_pending_and_scheduled_jobs_of_each_user(backend: &dyn Backend) {
    let (one, other) = backend.fresh_with_quota(4).await;
    let store = one.store.as_ref();
    let now = store.clock().now();
    store.submit(new_job("u")).await.unwrap();
    let later = NewJob {
        run_at: Some(now + HOUR),
        ..new_job("u")
    };
    let later = store.submit(later).await.unwrap();
    store.submit(dependent("u", &[later.id])).await.unwrap();
    let remote = NewJob {
        remote: true,
        ..NewJob::new("gpu", "u")
    };
    store.submit(remote).await.unwrap();
    assert_eq!(queued(store).await, 4);

    // A fifth, through either handle: refused, nothing stored.
    assert_refused(store.submit(new_job("u")).await, "u", 4);
    assert_refused(other.store.submit(new_job("u")).await, "u", 4);
    assert_eq!(queued(store).await, 4);
    // Another user has a quota of its own.
    store.submit(new_job("v")).await.unwrap();

    // A job cancelled at once (its dependency was cancelled) is not queued.
    store.cancel(later.id).await.unwrap();
    // The cancel also cancelled the dependent: two places are free.
    let blocked = store.submit(dependent("u", &[later.id])).await.unwrap();
    assert_eq!(blocked.status, JobStatus::Cancelled);
    store.submit(new_job("u")).await.unwrap();
    store.submit(new_job("u")).await.unwrap();
    assert_refused(store.submit(new_job("u")).await, "u", 4);

    // Running jobs do not count: claiming u's three built-in jobs leaves
    // its remote one queued, and room for three.
    let claimed = store.claim(&claim_params("w", 10)).await.unwrap();
    assert_eq!(claimed.iter().filter(|c| c.job.user_id == "u").count(), 3);
    let three: Vec<NewJob> = (0..3).map(|_| new_job("u")).collect();
    store.submit_all(three).await.unwrap();
    assert_refused(store.submit(new_job("u")).await, "u", 4);
}

pub async fn a_chain_past_the_quota_stores_nothing(backend: &dyn Backend) {
    let (handle, _) = backend.fresh_with_quota(3).await;
    let store = handle.store.as_ref();
    store.submit(new_job("u")).await.unwrap();
    let chain = |n: usize| {
        let mut jobs: Vec<NewJob> = Vec::new();
        for _ in 0..n {
            let on: Vec<_> = jobs.last().map(|j| j.id).into_iter().collect();
            jobs.push(dependent("u", &on));
        }
        jobs
    };
    let refused = chain(3);
    let ids: Vec<_> = refused.iter().map(|j| j.id).collect();
    assert_refused(store.submit_all(refused).await, "u", 3);
    assert_eq!(queued(store).await, 1, "no stage of the chain was stored");
    assert_eq!(store.missing(&ids).await.unwrap(), ids);
    // A chain of several users is refused whole for one of them.
    let mut mixed = chain(1);
    mixed.push(new_job("v"));
    mixed.extend(chain(2));
    assert_refused(store.submit_all(mixed).await, "u", 3);
    assert_eq!(queued(store).await, 1);

    let stored = store.submit_all(chain(2)).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(queued(store).await, 3);
}

pub async fn leaving_the_queue_frees_room_and_coming_back_takes_it(backend: &dyn Backend) {
    let (handle, _) = backend.fresh_with_quota(2).await;
    let store = handle.store.as_ref();
    let a = store.submit(new_job("u")).await.unwrap();
    store.submit(new_job("u")).await.unwrap();
    assert_refused(store.submit(new_job("u")).await, "u", 2);

    // Cancel frees a place; a claim another (a and b are claimed in order).
    store.cancel(a.id).await.unwrap();
    let c = store.submit(new_job("u")).await.unwrap();
    let b = claim_one(store).await;
    store.submit(new_job("u")).await.unwrap();
    assert_refused(store.submit(new_job("u")).await, "u", 2);

    // A restart takes a place: refused while the user is at the quota
    // (nothing changes), accepted once there is room.
    let failed = Outcome::Failed {
        error: "boom".into(),
        retry_at: None,
    };
    store.finish(b.claim, failed).await.unwrap();
    assert_refused(store.restart(b.job.id, None).await, "u", 2);
    assert_eq!(store.get(b.job.id).await.unwrap().status, JobStatus::Failed);
    assert_refused(store.restart(a.id, None).await, "u", 2);
    // A job that cannot restart is still a conflict, quota or not.
    assert!(matches!(
        store.restart(c.id, None).await,
        Err(StoreError::Conflict { .. })
    ));
    store.cancel(c.id).await.unwrap();
    store.restart(b.job.id, None).await.unwrap();
    assert_refused(store.submit(new_job("u")).await, "u", 2);

    // A retry goes back to scheduled: it counts; its promotion keeps it.
    let now = store.clock().now();
    let first = claim_one(store).await;
    store
        .finish(
            first.claim,
            Outcome::Failed {
                error: "again".into(),
                retry_at: Some(now + SECOND),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.get(first.job.id).await.unwrap().status,
        JobStatus::Scheduled
    );
    assert_refused(store.submit(new_job("u")).await, "u", 2);
    backend.advance(2 * SECOND);
    assert!(store.promote_due().await.unwrap() >= 1);
    assert_refused(store.submit(new_job("u")).await, "u", 2);
    // Both finish: the user's queue is empty again.
    for _ in 0..2 {
        let next = claim_one(store).await;
        let done = Outcome::Completed { result: json!(1) };
        store.finish(next.claim, done).await.unwrap();
    }
    assert_eq!(queued(store).await, 0);
    let fresh: Vec<NewJob> = (0..2).map(|_| new_job("u")).collect();
    store.submit_all(fresh).await.unwrap();
}

pub async fn the_quota_holds_for_submissions_racing_from_two_processes(backend: &dyn Backend) {
    const QUOTA: u64 = 10;
    let (one, two) = backend.fresh_with_quota(QUOTA).await;
    let submissions = (0..60).map(|i| {
        let store = if i % 2 == 0 {
            one.store.clone()
        } else {
            two.store.clone()
        };
        async move { store.submit(new_job("u")).await }
    });
    let results = futures::future::join_all(submissions).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::QuotaExceeded { .. })))
        .count();
    assert_eq!((accepted, refused), (QUOTA as usize, 60 - QUOTA as usize));
    assert_eq!(queued(one.store.as_ref()).await, QUOTA);
}
