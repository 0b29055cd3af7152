//! Debounced submission (`Store::submit_debounced`): a key's submissions
//! collapse into its waiting job, which takes the latest input and is due
//! a period after the last submission, never later than the longest wait
//! after the first; once the job is due and started, the key stores a new
//! job; keys are per user and job type; racing submissions from two
//! processes store exactly one job.

use jobd::model::{Debounce, JobStatus, NewJob, Submitted};

use super::*;

fn debounce(key: &str, period: Millis, max_wait: Millis) -> Debounce {
    Debounce {
        key: key.into(),
        period_millis: period,
        max_wait_millis: max_wait,
    }
}

/// A job of `user` with parameters `{"n": n}`.
fn numbered(user: &str, n: u32) -> NewJob {
    NewJob {
        parameters: json!({ "n": n }),
        ..new_job(user)
    }
}

async fn submit(store: &dyn Store, job: NewJob, d: &Debounce) -> Submitted {
    store.submit_debounced(job, d).await.unwrap()
}

fn created(submitted: Submitted) -> Job {
    match submitted {
        Submitted::Created(job) => job,
        other => panic!("expected a stored job, got {other:?}"),
    }
}

fn existing(submitted: Submitted) -> Job {
    match submitted {
        Submitted::Existing(job) => job,
        other => panic!("expected the key's job, got {other:?}"),
    }
}

pub async fn debounced_submissions_collapse_into_the_waiting_job(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let d = debounce("k", 10 * SECOND, HOUR);
    let t0 = store.clock().now();
    let first = created(submit(store, numbered("u", 1), &d).await);
    assert_eq!(first.status, JobStatus::Scheduled);
    assert_eq!(first.scheduled_for, Some(t0 + 10 * SECOND));

    backend.advance(3 * SECOND);
    let mut latest = numbered("u", 2);
    latest.priority = 7;
    latest.max_attempts = 3;
    latest.timeout_seconds = Some(4.5);
    latest.expires_in = Some(HOUR - 3 * SECOND);
    let again = existing(submit(store, latest, &d).await);
    assert_eq!(again.id, first.id);
    assert_eq!(again.status, JobStatus::Scheduled);
    assert_eq!(again.parameters, json!({"n": 2}), "the latest input");
    assert_eq!(
        (again.priority, again.max_attempts, again.timeout_seconds),
        (7, 3, Some(4.5))
    );
    assert_eq!(again.expires_at, Some(t0 + HOUR), "the latest deadline");
    assert_eq!(
        again.scheduled_for,
        Some(t0 + 13 * SECOND),
        "a period after the last"
    );
    assert_eq!(store.get(first.id).await.unwrap(), again);
    assert_eq!(count(store, JobStatus::Scheduled).await, 1);

    // Nothing is claimable until the period after the last submission.
    backend.advance(9 * SECOND);
    assert!(
        store
            .claim(&claim_params("w", 10))
            .await
            .unwrap()
            .is_empty()
    );
    backend.advance(SECOND);
    let claimed = claim_only(store, first.id).await;
    assert_eq!(claimed.job.parameters, json!({"n": 2}));
    assert_eq!(claimed.job.priority, 7);

    // Keys are per user and per job type.
    let theirs = created(submit(store, numbered("v", 1), &d).await);
    let other_type = NewJob {
        job_type: "other".into(),
        ..numbered("u", 1)
    };
    let typed = created(submit(store, other_type, &d).await);
    assert_ne!(theirs.id, first.id);
    assert_ne!(typed.id, first.id);
}

pub async fn a_debounced_job_waits_no_longer_than_max_wait(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let d = debounce("k", 10 * SECOND, 25 * SECOND);
    let t0 = store.clock().now();
    let first = created(submit(store, numbered("u", 0), &d).await);
    // A submission every 5 s would put it off forever but for the cap.
    for n in 1..=6 {
        backend.advance(5 * SECOND);
        let job = existing(submit(store, numbered("u", n), &d).await);
        assert_eq!(job.id, first.id);
        let now = store.clock().now();
        assert_eq!(
            job.scheduled_for,
            Some((now + 10 * SECOND).min(t0 + 25 * SECOND))
        );
    }
    // At t0 + 30 s it is past due: promoted, then claimed, with the last input.
    assert_eq!(store.promote_due().await.unwrap(), 1);
    let claimed = claim_only(store, first.id).await;
    assert_eq!(claimed.job.parameters, json!({"n": 6}));

    // A max_wait shorter than the period makes the first job due at the cap.
    let short = debounce("short", HOUR, 2 * SECOND);
    let capped = created(submit(store, numbered("u", 0), &short).await);
    assert_eq!(capped.scheduled_for, Some(store.clock().now() + 2 * SECOND));
}

pub async fn once_the_debounced_job_is_due_the_key_stores_a_new_job(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let d = debounce("k", 5 * SECOND, HOUR);
    let first = created(submit(store, numbered("u", 1), &d).await);
    backend.advance(6 * SECOND);
    // Promoted (pending): no longer collapsible.
    assert_eq!(store.promote_due().await.unwrap(), 1);
    let second = created(submit(store, numbered("u", 2), &d).await);
    assert_ne!(second.id, first.id);
    assert_eq!(second.status, JobStatus::Scheduled);
    // The key now holds the second job.
    let third = existing(submit(store, numbered("u", 3), &d).await);
    assert_eq!(third.id, second.id);
    assert_eq!(
        store.get(first.id).await.unwrap().parameters,
        json!({"n": 1})
    );

    // Started (running), and then scheduled again for a retry: a retry is
    // not a waiting debounced job either.
    backend.advance(6 * SECOND);
    let claimed = claim_one(store).await;
    let claimed = if claimed.job.id == first.id {
        claim_only(store, second.id).await
    } else {
        claimed
    };
    assert_eq!(claimed.job.id, second.id);
    let now = store.clock().now();
    store
        .finish(
            claimed.claim,
            jobd::store::Outcome::Failed {
                error: "again".into(),
                retry_at: Some(now + HOUR),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.get(second.id).await.unwrap().status,
        JobStatus::Scheduled
    );
    let fourth = created(submit(store, numbered("u", 4), &d).await);
    assert_ne!(fourth.id, second.id);
    // A cancelled job is not collapsible either.
    store.cancel(fourth.id).await.unwrap();
    let fifth = created(submit(store, numbered("u", 5), &d).await);
    assert_ne!(fifth.id, fourth.id);
}

pub async fn racing_debounced_submissions_store_one_job(backend: &dyn Backend) {
    let (one, two) = backend.fresh_with_quota(1_000_000).await;
    let d = debounce("race", 10 * SECOND, HOUR);
    let submissions = (0..100).map(|i| {
        let store = if i % 2 == 0 {
            one.store.clone()
        } else {
            two.store.clone()
        };
        let d = d.clone();
        async move { store.submit_debounced(numbered("u", i), &d).await }
    });
    let results = futures::future::join_all(submissions).await;
    let mut created_ids = Vec::new();
    let mut answered = std::collections::HashSet::new();
    for result in results {
        match result.unwrap() {
            Submitted::Created(job) => {
                answered.insert(job.id);
                created_ids.push(job.id);
            }
            Submitted::Existing(job) => {
                answered.insert(job.id);
            }
        }
    }
    assert_eq!(created_ids.len(), 1, "exactly one submission stores");
    assert_eq!(answered.len(), 1, "every answer is that job");
    assert_eq!(count(one.store.as_ref(), JobStatus::Scheduled).await, 1);
}
