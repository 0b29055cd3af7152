//! Routing by job type: a claim takes only the jobs its worker serves (a
//! built-in worker never a remote job, a remote worker only remote jobs of
//! its types), the limits count every running job whatever its route, and
//! every way back to the queue puts a remote job in its own. Each rule on
//! a fresh store, so that it sees only its own jobs.

use jobd::model::{JobId, JobStatus, NewJob};
use jobd::store::{ClaimParams, Claimed, Outcome, Serves, Store, WorkerInfo};

use super::*;

/// A remote job of `job_type` for `user`.
fn remote(job_type: &str, user: &str) -> NewJob {
    NewJob {
        remote: true,
        ..NewJob::new(job_type, user)
    }
}

/// A remote worker's claim of up to `max_jobs` jobs of `types`.
fn serving(types: &[&str], max_jobs: usize) -> ClaimParams {
    ClaimParams {
        serves: Serves::Remote(types.iter().map(|t| (*t).to_owned()).collect()),
        ..claim_params("remote-worker", max_jobs)
    }
}

async fn submit(store: &dyn Store, new: NewJob) -> JobId {
    store.submit(new).await.unwrap().id
}

/// The ids a claim took, in order.
async fn claimed_ids(store: &dyn Store, params: &ClaimParams) -> Vec<JobId> {
    let claimed = store.claim(params).await.unwrap();
    for c in &claimed {
        assert!(
            params.serves.takes(&c.job),
            "{:?} took {:?}",
            params.serves,
            c.job
        );
        assert_eq!(c.job.status, JobStatus::Running);
    }
    claimed.into_iter().map(|c| c.job.id).collect()
}

/// Claims one job at a time for `params` until none is left.
async fn drain(store: &dyn Store, params: &ClaimParams) -> Vec<JobId> {
    let one = ClaimParams {
        max_jobs: 1,
        ..params.clone()
    };
    let mut ids = Vec::new();
    for _ in 0..1000 {
        match claimed_ids(store, &one).await.as_slice() {
            [] => return ids,
            [id] => ids.push(*id),
            more => panic!("asked for one job, got {}", more.len()),
        }
    }
    panic!("the queue never emptied")
}

/// `id`, a remote job of `job_type`, is back in its own queue: a built-in
/// claim does not take it, a claim for another type neither, a claim for
/// its type does. Returns that claim. (A due retry is promoted by the
/// first claim, the built-in one.)
async fn claimable_only_remotely(store: &dyn Store, id: JobId, job_type: &str) -> Claimed {
    assert!(
        claimed_ids(store, &claim_params("w", 10)).await.is_empty(),
        "a built-in claim took a remote job"
    );
    assert_eq!(store.get(id).await.unwrap().status, JobStatus::Pending);
    assert!(
        claimed_ids(store, &serving(&["other"], 10))
            .await
            .is_empty(),
        "a claim for another type took it"
    );
    let mut claimed = store.claim(&serving(&[job_type], 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.id, id);
    assert!(claimed[0].job.remote);
    claimed.remove(0)
}

/// Built-in claims take built-in jobs only, a remote claim only remote jobs
/// of its types (a built-in type's name does not make a job remote); the
/// job says it is remote, as submitted, as claimed and as read.
pub async fn a_claim_takes_only_the_jobs_its_worker_serves(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let built_in = [
        submit(store, new_job("u")).await,
        submit(store, NewJob::new("extraction", "v")).await,
    ];
    let submitted = store.submit(remote("extraction", "u")).await.unwrap();
    assert!(submitted.remote);
    let a = [submitted.id, submit(store, remote("extraction", "v")).await];
    let b = submit(store, remote("ocr", "u")).await;
    assert!(store.get(a[0]).await.unwrap().remote);
    assert!(!store.get(built_in[0]).await.unwrap().remote);

    assert!(claimed_ids(store, &serving(&[], 10)).await.is_empty());
    assert!(
        claimed_ids(store, &serving(&["noop"], 10)).await.is_empty(),
        "noop jobs are built-in"
    );
    let mut taken = claimed_ids(store, &serving(&["extraction"], 10)).await;
    taken.sort();
    assert_eq!(taken, a);
    let claimed = store.claim(&serving(&["ocr"], 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.id, b);
    assert!(claimed[0].job.remote);
    let mut taken = claimed_ids(store, &claim_params("w", 10)).await;
    taken.sort();
    assert_eq!(taken, built_in);
    assert!(!store.get(built_in[1]).await.unwrap().remote);
}

/// A remote claim serves its type's users round-robin, least recently
/// served first, and within a user by priority then first in, first out,
/// as a built-in claim does; a claim for several types takes each of their
/// jobs once.
pub async fn a_remote_claim_serves_users_round_robin(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let a1 = submit(store, remote("gpu", "a")).await;
    let a2 = submit(store, remote("gpu", "a")).await;
    let a3 = submit(store, remote("gpu", "a")).await;
    let c1 = submit(store, remote("gpu", "c")).await;
    let c2 = submit(store, remote("gpu", "c")).await;
    let b1 = submit(store, remote("gpu", "b")).await;
    // Built-in jobs of the same users neither take turns nor get in the way.
    submit(store, new_job("a")).await;
    submit(store, new_job("b")).await;
    assert_eq!(
        drain(store, &serving(&["gpu"], 1)).await,
        vec![a1, b1, c1, a2, c2, a3]
    );

    let low = submit(store, remote("gpu", "p")).await;
    let high = submit(
        store,
        NewJob {
            priority: 5,
            ..remote("gpu", "p")
        },
    )
    .await;
    let later = submit(store, remote("gpu", "p")).await;
    assert_eq!(
        drain(store, &serving(&["gpu"], 1)).await,
        vec![high, low, later]
    );

    let mut both = Vec::new();
    for user in ["x", "y"] {
        both.push(submit(store, remote("gpu", user)).await);
        both.push(submit(store, remote("ocr", user)).await);
    }
    let mut taken = drain(store, &serving(&["gpu", "ocr"], 1)).await;
    taken.sort();
    both.sort();
    assert_eq!(taken, both);
    assert_eq!(drain(store, &claim_params("w", 1)).await.len(), 2);
}

/// Built-in and remote claims draw from the same global and per-user
/// limits; a claim for several types gives a user no more than its limit.
pub async fn limits_are_shared_by_built_in_and_remote_claims(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let mut built_in = Vec::new();
    for _ in 0..3 {
        built_in.push(submit(store, new_job("u")).await);
        submit(store, remote("gpu", "u")).await;
    }
    let v1 = submit(store, remote("gpu", "v")).await;
    submit(store, remote("gpu", "v")).await;
    let limited = |params: ClaimParams| ClaimParams {
        global_max: 3,
        per_user_max: 2,
        ..params
    };
    let claimed = store.claim(&limited(claim_params("w", 10))).await.unwrap();
    assert_eq!(claimed.len(), 2, "u's limit");
    // u is at its limit whatever the route: only v's job, and then the
    // global limit.
    assert_eq!(
        claimed_ids(store, &limited(serving(&["gpu"], 10))).await,
        [v1]
    );
    assert!(
        claimed_ids(store, &limited(serving(&["gpu"], 10)))
            .await
            .is_empty()
    );
    assert!(
        claimed_ids(store, &limited(claim_params("w", 10)))
            .await
            .is_empty()
    );
    store
        .finish(claimed[0].claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    let taken = store.claim(&limited(serving(&["gpu"], 10))).await.unwrap();
    assert_eq!(taken.len(), 1, "the freed slot");
    assert_eq!(taken[0].job.user_id, "u");
    assert!(
        claimed_ids(store, &limited(claim_params("w", 10)))
            .await
            .is_empty()
    );

    // One claim for two types: the user's two queues share its limit.
    let fresh = backend.fresh().await;
    let store = fresh.store.as_ref();
    for _ in 0..2 {
        submit(store, remote("gpu", "x")).await;
        submit(store, remote("ocr", "x")).await;
    }
    let params = ClaimParams {
        per_user_max: 1,
        ..serving(&["gpu", "ocr"], 10)
    };
    assert_eq!(claimed_ids(store, &params).await.len(), 1);
    assert!(claimed_ids(store, &params).await.is_empty());
}

/// Every way back to the queue puts a remote job in its own, claimable by
/// a remote claim for its type only: cancel then restart, release,
/// recovery after its lease, a retry, a restart after failing, promotion
/// from scheduled, a dependency completing, and revival of a dependent a
/// cancel had cancelled. A cancelled pending remote job leaves its queue.
pub async fn a_remote_job_goes_back_to_its_own_queue(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();

    // Cancelled while pending: out of the queue; restarted: back in.
    let id = submit(store, remote("gpu", "u")).await;
    store.cancel(id).await.unwrap();
    assert!(claimed_ids(store, &serving(&["gpu"], 10)).await.is_empty());
    store.restart(id, None).await.unwrap();
    let claimed = claimable_only_remotely(store, id, "gpu").await;

    // Released (graceful shutdown of its worker).
    store.release(&[claimed.claim]).await.unwrap();
    claimable_only_remotely(store, id, "gpu").await;

    // Recovered after its lease.
    backend.advance(LEASE + 1);
    let report = store.recover_expired(&recover_params(3)).await.unwrap();
    assert_eq!(report.requeued, vec![id]);
    let claimed = claimable_only_remotely(store, id, "gpu").await;

    // Retried after a failed attempt: scheduled, then promoted by a claim.
    let retry_at = store.clock().now() + SECOND;
    let again = Outcome::Failed {
        error: "again".into(),
        retry_at: Some(retry_at),
    };
    store.finish(claimed.claim, again).await.unwrap();
    backend.advance(SECOND);
    let claimed = claimable_only_remotely(store, id, "gpu").await;

    // Restarted after failing for good.
    let failed = Outcome::Failed {
        error: "bad".into(),
        retry_at: None,
    };
    store.finish(claimed.claim, failed).await.unwrap();
    store.restart(id, None).await.unwrap();
    claimable_only_remotely(store, id, "gpu").await;

    // Promoted from scheduled by the scheduler.
    let now = store.clock().now();
    let later = submit(
        store,
        NewJob {
            run_at: Some(now + HOUR),
            ..remote("gpu", "v")
        },
    )
    .await;
    backend.advance(HOUR);
    assert_eq!(store.promote_due().await.unwrap(), 1);
    claimable_only_remotely(store, later, "gpu").await;

    // Released by a dependency completing, then revived by its restart.
    let blocker = submit(store, new_job("w")).await;
    let waiting = submit(
        store,
        NewJob {
            depends_on: vec![blocker],
            ..remote("gpu", "w")
        },
    )
    .await;
    let claimed = claim_only(store, blocker).await;
    store
        .finish(claimed.claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    claimable_only_remotely(store, waiting, "gpu").await;

    let blocker = submit(store, new_job("w")).await;
    let dependent = submit(
        store,
        NewJob {
            depends_on: vec![blocker],
            ..remote("gpu", "w")
        },
    )
    .await;
    store.cancel(blocker).await.unwrap();
    assert_eq!(
        store.get(dependent).await.unwrap().status,
        JobStatus::Cancelled
    );
    store.restart(blocker, None).await.unwrap();
    let revived = store.get(dependent).await.unwrap();
    assert_eq!(
        (revived.status, revived.waiting_dependencies),
        (JobStatus::Scheduled, 1)
    );
    assert!(revived.remote);
    let claimed = claim_only(store, blocker).await;
    store
        .finish(claimed.claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    claimable_only_remotely(store, dependent, "gpu").await;
}

/// The registry keeps what each worker serves.
pub async fn the_registry_keeps_what_a_worker_serves(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let info = |worker_id: &str, serves: Serves| WorkerInfo {
        worker_id: worker_id.into(),
        host: "h".into(),
        pid: 1,
        started_at: store.clock().now(),
        concurrency: 4,
        serves,
    };
    let gpu = Serves::Remote(vec!["gpu".into(), "ocr".into()]);
    store
        .heartbeat(&info("built-in", Serves::BuiltIn), &[], span(LEASE))
        .await
        .unwrap();
    store
        .heartbeat(&info("remote", gpu.clone()), &[], span(LEASE))
        .await
        .unwrap();
    let mut workers = store.workers().await.unwrap();
    workers.sort_by(|a, b| a.info.worker_id.cmp(&b.info.worker_id));
    let serves: Vec<(&str, &Serves)> = workers
        .iter()
        .map(|w| (w.info.worker_id.as_str(), &w.info.serves))
        .collect();
    assert_eq!(serves, [("built-in", &Serves::BuiltIn), ("remote", &gpu)]);
}
