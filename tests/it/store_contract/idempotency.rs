//! Idempotent submission (`Store::submit_once`): a key stores one job and
//! answers it to every repeat with the same fingerprint, whatever the job's
//! status; another fingerprint is refused, storing nothing; keys are per
//! user and hold for their lifetime; racing submissions from two processes
//! store exactly one job.

use jobd::model::{IdempotencyKey, JobStatus, Submitted};
use jobd::store::{Outcome, StoreError};

use super::*;

fn key(key: &str, fingerprint: &str) -> IdempotencyKey {
    IdempotencyKey {
        key: key.into(),
        fingerprint: fingerprint.into(),
        ttl_millis: HOUR,
    }
}

/// Submits a job of `user` under `key` with `fingerprint`.
async fn once(store: &dyn Store, user: &str, key_name: &str, fingerprint: &str) -> Submitted {
    store
        .submit_once(new_job(user), &key(key_name, fingerprint))
        .await
        .unwrap()
}

fn created(submitted: Submitted) -> jobd::model::Job {
    match submitted {
        Submitted::Created(job) => job,
        other => panic!("expected a stored job, got {other:?}"),
    }
}

fn existing(submitted: Submitted) -> jobd::model::Job {
    match submitted {
        Submitted::Existing(job) => job,
        other => panic!("expected the key's job, got {other:?}"),
    }
}

pub async fn a_key_stores_one_job_and_answers_it_to_repeats(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let first = created(once(store, "u", "k", "a").await);
    assert_eq!(first.status, JobStatus::Pending);

    // A repeat: the first job, not a new one.
    let again = existing(once(store, "u", "k", "a").await);
    assert_eq!(again.id, first.id);
    assert_eq!(count(store, JobStatus::Pending).await, 1);

    // Whatever its status now.
    let claimed = claim_one(store).await;
    assert_eq!(claimed.job.id, first.id);
    store
        .finish(
            claimed.claim,
            Outcome::Completed {
                result: json!({"done": true}),
            },
        )
        .await
        .unwrap();
    let done = existing(once(store, "u", "k", "a").await);
    assert_eq!((done.id, done.status), (first.id, JobStatus::Completed));

    // Another body under the key: refused, nothing stored.
    match store.submit_once(new_job("u"), &key("k", "b")).await {
        Err(StoreError::IdempotencyMismatch { key, job_id }) => {
            assert_eq!((key.as_str(), job_id), ("k", first.id));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    // Keys are per user; another key is another job.
    let theirs = created(once(store, "v", "k", "b").await);
    let other = created(once(store, "u", "k2", "a").await);
    assert_ne!(theirs.id, first.id);
    assert_ne!(other.id, first.id);
    assert_eq!(count(store, JobStatus::Pending).await, 2);
    assert_eq!(count(store, JobStatus::Completed).await, 1);
}

pub async fn a_key_holds_for_its_lifetime_only(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let first = created(once(store, "u", "k", "a").await);
    backend.advance(HOUR - SECOND);
    let held = existing(once(store, "u", "k", "a").await);
    assert_eq!(held.id, first.id);
    assert!(matches!(
        store.submit_once(new_job("u"), &key("k", "b")).await,
        Err(StoreError::IdempotencyMismatch { .. })
    ));
}

pub async fn a_key_past_its_lifetime_stores_a_new_job(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let first = created(once(store, "u", "k", "a").await);
    backend.advance(HOUR + SECOND);
    // Past it, the key is free, for any body, and holds the new job.
    let second = created(once(store, "u", "k", "b").await);
    assert_ne!(second.id, first.id);
    let again = existing(once(store, "u", "k", "b").await);
    assert_eq!(again.id, second.id);
}

pub async fn racing_submissions_with_one_key_store_one_job(backend: &dyn Backend) {
    let (one, two) = backend.fresh_with_quota(1_000_000).await;
    let submissions = (0..100).map(|i| {
        let store = if i % 2 == 0 {
            one.store.clone()
        } else {
            two.store.clone()
        };
        async move { store.submit_once(new_job("u"), &key("race", "same")).await }
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
    assert_eq!(count(one.store.as_ref(), JobStatus::Pending).await, 1);
}
