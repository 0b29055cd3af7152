//! Limits per job type, kept by the claim: per concurrency key, per type,
//! a rate of starts; jobs over a limit stay pending and come back when a
//! slot frees (finish, release, cancel, recovery) or the window opens;
//! a user whose next job waits still gets its others; user weights. Each
//! on a fresh store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jobd::model::{JobStatus, NewJob};
use jobd::store::{ClaimLimits, ClaimParams, Claimed, Outcome, RateLimit, Store, TypeLimits};

use super::*;

fn keyed(user: &str, key: &str) -> NewJob {
    NewJob {
        concurrency_key: Some(key.to_owned()),
        ..new_job(user)
    }
}

fn limited(limits: TypeLimits) -> ClaimParams {
    ClaimParams {
        limits: Arc::new(ClaimLimits {
            types: BTreeMap::from([("noop".to_owned(), limits)]),
            user_weights: BTreeMap::new(),
        }),
        ..claim_params("w", 10)
    }
}

fn per_key(max: usize) -> ClaimParams {
    limited(TypeLimits {
        per_key_max: Some(max),
        ..TypeLimits::default()
    })
}

fn keys_of(claimed: &[Claimed]) -> Vec<String> {
    let mut keys: Vec<String> = claimed
        .iter()
        .map(|c| c.job.concurrency_key.clone().unwrap_or_default())
        .collect();
    keys.sort();
    keys
}

async fn complete(store: &dyn Store, claimed: &Claimed) {
    store
        .finish(claimed.claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
}

pub async fn a_job_keeps_its_concurrency_key(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let job = store.submit(keyed("u", "set-1")).await.unwrap();
    assert_eq!(job.concurrency_key.as_deref(), Some("set-1"));
    assert_eq!(
        store.get(job.id).await.unwrap().concurrency_key.as_deref(),
        Some("set-1")
    );
    let page = store
        .list(&jobd::store::ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.jobs[0].concurrency_key.as_deref(), Some("set-1"));
    let claimed = store.claim(&per_key(1)).await.unwrap();
    assert_eq!(claimed[0].job.concurrency_key.as_deref(), Some("set-1"));
}

pub async fn the_per_key_limit_holds_and_other_keys_and_users_proceed(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    for (user, key) in [("u", "a"), ("u", "a"), ("u", "b"), ("v", "a"), ("v", "c")] {
        store.submit(keyed(user, key)).await.unwrap();
    }
    // A job without a key has no per-key limit.
    store.submit(new_job("w")).await.unwrap();
    let params = per_key(1);
    let first = store.claim(&params).await.unwrap();
    assert_eq!(keys_of(&first), ["", "a", "b", "c"]);
    assert!(store.claim(&params).await.unwrap().is_empty());
    assert_eq!(count(store.as_ref(), JobStatus::Pending).await, 2);
    // Each end of an `a` job lets the next one run, until none is left.
    let mut a = first
        .into_iter()
        .find(|c| c.job.concurrency_key.as_deref() == Some("a"))
        .unwrap();
    for _ in 0..2 {
        complete(store.as_ref(), &a).await;
        let next = store.claim(&params).await.unwrap();
        assert_eq!(keys_of(&next), ["a"]);
        a = next.into_iter().next().unwrap();
    }
    complete(store.as_ref(), &a).await;
    assert!(store.claim(&params).await.unwrap().is_empty());
    assert_eq!(count(store.as_ref(), JobStatus::Pending).await, 0);
}

pub async fn a_user_whose_next_job_waits_still_gets_its_others(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    for key in ["a", "a", "a", "b"] {
        store.submit(keyed("u", key)).await.unwrap();
    }
    let params = ClaimParams {
        max_jobs: 1,
        ..per_key(1)
    };
    let one = store.claim(&params).await.unwrap();
    assert_eq!(keys_of(&one), ["a"]);
    let two = store.claim(&params).await.unwrap();
    assert_eq!(
        keys_of(&two),
        ["b"],
        "the waiting `a` jobs hold nothing back"
    );
    assert!(store.claim(&params).await.unwrap().is_empty());
}

pub async fn the_type_limit_holds_across_users(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    for user in ["u", "v", "w", "x", "y"] {
        store.submit(new_job(user)).await.unwrap();
    }
    let other = NewJob::new("sleep", "z");
    store.submit(other).await.unwrap();
    let params = limited(TypeLimits {
        type_max: Some(2),
        ..TypeLimits::default()
    });
    let first = store.claim(&params).await.unwrap();
    let noop = first.iter().filter(|c| c.job.job_type == "noop").count();
    assert_eq!((first.len(), noop), (3, 2), "two noop and the other type");
    assert!(store.claim(&params).await.unwrap().is_empty());
    let finished = first.iter().find(|c| c.job.job_type == "noop").unwrap();
    complete(store.as_ref(), finished).await;
    assert_eq!(store.claim(&params).await.unwrap().len(), 1);
    assert!(store.claim(&params).await.unwrap().is_empty());
}

pub async fn the_rate_limit_opens_after_the_window(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store;
    for user in ["u", "u", "v", "v", "w"] {
        store.submit(new_job(user)).await.unwrap();
    }
    let params = limited(TypeLimits {
        rate: Some(RateLimit {
            count: 2,
            per: span(10 * SECOND),
            per_key: false,
        }),
        ..TypeLimits::default()
    });
    let first = store.claim(&params).await.unwrap();
    assert_eq!(first.len(), 2);
    for claimed in &first {
        complete(store.as_ref(), claimed).await;
    }
    // Finishing frees no start: the window counts starts.
    assert!(store.claim(&params).await.unwrap().is_empty());
    let window = store.rate_window("noop").await.unwrap().unwrap();
    assert_eq!(window.started, 2);
    assert_eq!(window.closes_at, store.clock().now() + 10 * SECOND);
    backend.advance(5 * SECOND);
    assert!(store.claim(&params).await.unwrap().is_empty());
    backend.advance(5 * SECOND);
    assert_eq!(store.claim(&params).await.unwrap().len(), 2);
    assert!(store.claim(&params).await.unwrap().is_empty());
    backend.advance(10 * SECOND);
    assert_eq!(store.claim(&params).await.unwrap().len(), 1);
    assert_eq!(count(store.as_ref(), JobStatus::Pending).await, 0);
}

pub async fn a_rate_per_key_counts_each_key_alone(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    for key in ["a", "a", "a", "b"] {
        store.submit(keyed("u", key)).await.unwrap();
    }
    let params = limited(TypeLimits {
        rate: Some(RateLimit {
            count: 1,
            per: span(SECOND),
            per_key: true,
        }),
        ..TypeLimits::default()
    });
    assert_eq!(keys_of(&store.claim(&params).await.unwrap()), ["a", "b"]);
    assert!(store.claim(&params).await.unwrap().is_empty());
    backend.advance(SECOND);
    assert_eq!(keys_of(&store.claim(&params).await.unwrap()), ["a"]);
    backend.advance(SECOND);
    assert_eq!(keys_of(&store.claim(&params).await.unwrap()), ["a"]);
}

/// The job running now with key `key`, by its claim.
fn running_with<'a>(claims: &'a [Claimed], key: &str) -> &'a Claimed {
    claims
        .iter()
        .find(|c| c.job.concurrency_key.as_deref() == Some(key))
        .unwrap()
}

pub async fn waiting_jobs_come_back_on_release_cancel_and_recovery(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let mut ids = Vec::new();
    for user in ["u", "v", "w", "x"] {
        ids.push(store.submit(keyed(user, "a")).await.unwrap().id);
    }
    let params = ClaimParams {
        lease: span(LEASE),
        ..per_key(1)
    };
    let first = store.claim(&params).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store.claim(&params).await.unwrap().is_empty());

    // Release: the job goes back, and one job may run again.
    store.release(&[first[0].claim]).await.unwrap();
    let second = store.claim(&params).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(store.claim(&params).await.unwrap().is_empty());

    // Cancel of the running job frees its slot.
    store.cancel(second[0].job.id).await.unwrap();
    let third = store.claim(&params).await.unwrap();
    assert_eq!(third.len(), 1);

    // Cancel of a waiting job: it leaves the queue; the others still wait.
    let waiting: Vec<_> = ids
        .iter()
        .copied()
        .filter(|id| *id != second[0].job.id && *id != third[0].job.id)
        .collect();
    assert_eq!(waiting.len(), 2);
    let cancelled = store.cancel(waiting[0]).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(store.claim(&params).await.unwrap().is_empty());

    // Recovery of the running job frees its slot.
    backend.advance(LEASE + SECOND);
    let report = store.recover_expired(&recover_params(5)).await.unwrap();
    assert_eq!(report.requeued.len(), 1);
    let fourth = store.claim(&params).await.unwrap();
    assert_eq!(fourth.len(), 1);
    complete(store.as_ref(), running_with(&fourth, "a")).await;
    let fifth = store.claim(&params).await.unwrap();
    assert_eq!(fifth.len(), 1);
    complete(store.as_ref(), &fifth[0]).await;
    assert!(store.claim(&params).await.unwrap().is_empty());
    assert_eq!(count(store.as_ref(), JobStatus::Pending).await, 0);
    assert_eq!(count(store.as_ref(), JobStatus::Completed).await, 2);
}

pub async fn a_waiting_jobs_cancel_after_its_turn_came_lets_the_next_run(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let mut ids = Vec::new();
    for user in ["u", "v", "w"] {
        ids.push(store.submit(keyed(user, "a")).await.unwrap().id);
    }
    let params = per_key(1);
    let first = store.claim(&params).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store.claim(&params).await.unwrap().is_empty());
    complete(store.as_ref(), &first[0]).await;
    // The job whose turn came is cancelled before any claim: the last one
    // still runs.
    let next = ids[1..]
        .iter()
        .copied()
        .find(|id| *id != first[0].job.id)
        .unwrap();
    store.cancel(next).await.unwrap();
    let last = store.claim(&params).await.unwrap();
    assert_eq!(last.len(), 1);
}

pub async fn weights_give_proportional_shares(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    for _ in 0..20 {
        store.submit(new_job("paying")).await.unwrap();
        store.submit(new_job("free")).await.unwrap();
    }
    let params = ClaimParams {
        max_jobs: 8,
        limits: Arc::new(ClaimLimits {
            types: BTreeMap::new(),
            user_weights: BTreeMap::from([("paying".to_owned(), 3)]),
        }),
        ..claim_params("w", 8)
    };
    let mut shares: HashMap<String, usize> = HashMap::new();
    for _ in 0..4 {
        let claimed = store
            .claim(&ClaimParams {
                max_jobs: 4,
                ..params.clone()
            })
            .await
            .unwrap();
        for c in &claimed {
            *shares.entry(c.job.user_id.clone()).or_default() += 1;
            complete(store.as_ref(), c).await;
        }
    }
    assert_eq!(shares["paying"], 12, "{shares:?}");
    assert_eq!(shares["free"], 4, "{shares:?}");
}

pub async fn the_quota_counts_waiting_jobs(backend: &dyn Backend) {
    let (one, _) = backend.fresh_with_quota(3).await;
    let store = one.store.as_ref();
    for _ in 0..3 {
        store.submit(keyed("u", "a")).await.unwrap();
    }
    let claimed = store.claim(&per_key(1)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store.submit(keyed("u", "a")).await.unwrap();
    assert!(store.submit(keyed("u", "a")).await.is_err(), "3 queued");
}

pub async fn jobs_waiting_under_a_removed_limit_run_without_it(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    for user in ["u", "v", "w"] {
        store.submit(keyed(user, "a")).await.unwrap();
    }
    let first = store.claim(&per_key(1)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store.claim(&per_key(1)).await.unwrap().is_empty());
    // The configuration loses the limit: within about a second the
    // waiting jobs are claimable again, with nothing of the key stopping.
    backend.advance(SECOND + 1);
    let rest = store.claim(&claim_params("w", 10)).await.unwrap();
    assert_eq!(keys_of(&rest), ["a", "a"]);
    assert_eq!(count(store.as_ref(), JobStatus::Pending).await, 0);
}

pub async fn a_cancelled_waiting_job_leaves_no_turn_behind(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let mut ids = Vec::new();
    for user in ["u", "v", "w"] {
        ids.push(store.submit(keyed(user, "a")).await.unwrap().id);
    }
    let params = per_key(1);
    let first = store.claim(&params).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store.claim(&params).await.unwrap().is_empty());
    let waiting: Vec<_> = ids.iter().filter(|id| **id != first[0].job.id).collect();
    store.cancel(*waiting[0]).await.unwrap();
    // The end of the running job lets the one still waiting run at once
    // (no clock moves: nothing but the end frees the key).
    complete(store.as_ref(), &first[0]).await;
    let next = store.claim(&params).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job.id, *waiting[1]);
}
