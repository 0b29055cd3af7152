//! Scenarios across several operations and handles: concurrency, limits,
//! fencing, leases and recovery, dependencies, chains. Each runs on the
//! backend's shared store, often through several handles (as several
//! processes would).

use std::collections::HashSet;

use jobd::model::{JobStatus, Progress};
use jobd::store::{
    CleanupParams, Finish, FinishedTotals, ListQuery, Outcome, RecoverParams, StoreError,
};
use serde_json::json;

use super::*;

pub async fn every_job_is_claimed_exactly_once(backend: &dyn Backend) {
    let mut handles = Vec::new();
    for _ in 0..4 {
        handles.push(backend.open().await);
    }
    // Many claimers race for one job.
    let id = handles[0].submit(new_job("u")).await.unwrap().id;
    let mut racers = Vec::new();
    for i in 0..16 {
        let store = handles[i % handles.len()].clone();
        racers.push(tokio::spawn(async move {
            store
                .claim(&claim_params(&format!("w{i}"), 1))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for racer in racers {
        for claimed in racer.await.unwrap() {
            assert_eq!(claimed.job.id, id);
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "one job, one claim");

    // Many claimers drain 200 jobs: each is claimed once.
    let mut ids = HashSet::new();
    for i in 0..200 {
        ids.insert(
            handles[i % 4]
                .submit(new_job(&format!("u{}", i % 7)))
                .await
                .unwrap()
                .id,
        );
    }
    let mut claimers = Vec::new();
    for i in 0..8 {
        let store = handles[i % handles.len()].clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim(&claim_params(&format!("c{i}"), 3))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.job.id));
            }
        }));
    }
    let mut seen = Vec::new();
    for claimer in claimers {
        seen.extend(claimer.await.unwrap());
    }
    assert_eq!(seen.len(), 200, "no job claimed twice, none missed");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
}

pub async fn claims_respect_both_limits(backend: &dyn Backend) {
    let store = backend.open().await;
    for user in ["a", "a", "a", "b", "b", "c"] {
        store.submit(new_job(user)).await.unwrap();
    }
    let mut params = claim_params("w", 10);
    params.global_max = 4;
    params.per_user_max = 2;
    let claimed = store.claim(&params).await.unwrap();
    let users: Vec<&str> = claimed.iter().map(|c| c.job.user_id.as_str()).collect();
    assert_eq!(claimed.len(), 4, "{users:?}");
    assert!(users.iter().filter(|u| **u == "a").count() <= 2);
    assert!(
        users.contains(&"b") && users.contains(&"c"),
        "round-robin: {users:?}"
    );
    assert!(
        store.claim(&params).await.unwrap().is_empty(),
        "global limit reached"
    );
    store
        .finish(claimed[0].claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    assert_eq!(store.claim(&params).await.unwrap().len(), 1, "a slot freed");
}

pub async fn finishing_and_claiming_in_one_call_keeps_the_limits(backend: &dyn Backend) {
    let store = backend.open().await;
    for user in ["a", "a", "a", "b"] {
        store.submit(new_job(user)).await.unwrap();
    }
    let mut params = claim_params("w", 2);
    params.global_max = 2;
    params.per_user_max = 1;
    let claimed = store.claim(&params).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let finish: Vec<Finish> = claimed
        .iter()
        .map(|c| Finish {
            claim: c.claim,
            outcome: Outcome::Completed {
                result: json!("done"),
            },
        })
        .collect();
    let mut refill = claim_params("w", 2);
    refill.global_max = 2;
    refill.per_user_max = 1;
    let exchanged = store
        .finish_and_claim(&finish, Some(&refill))
        .await
        .unwrap();
    for (result, before) in exchanged.finished.iter().zip(&claimed) {
        let job = result.as_ref().unwrap();
        assert_eq!(job.id, before.job.id);
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.result, Some(json!("done")));
        assert_eq!(store.get(job.id).await.unwrap().revision, job.revision);
    }
    let users: Vec<&str> = exchanged
        .claimed
        .iter()
        .map(|c| c.job.user_id.as_str())
        .collect();
    assert_eq!(users, ["a"], "b's queue is empty, a's limit is one");
    assert_eq!(exchanged.claimed[0].job.status, JobStatus::Running);
    let stats = store.stats(Duration::ZERO).await.unwrap();
    let count = |s: JobStatus| stats.counts.iter().find(|(x, _)| *x == s).unwrap().1;
    assert_eq!(count(JobStatus::Running), 1);
    assert_eq!(count(JobStatus::Completed), 2);
    assert_eq!(count(JobStatus::Pending), 1);
    let again = store.finish_and_claim(&finish, None).await.unwrap();
    assert!(
        again
            .finished
            .iter()
            .all(|r| matches!(r, Err(StoreError::ClaimLost(_)))),
        "a finished attempt cannot end twice"
    );
    assert!(again.claimed.is_empty());
}

pub async fn updates_need_the_current_claim(backend: &dyn Backend) {
    let store = backend.open().await;
    let job = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_one(store.as_ref()).await;
    assert_eq!(claimed.job.status, JobStatus::Running);
    assert_eq!(claimed.job.attempts, 1);
    let mut forged = claimed.claim;
    forged.token = uuid::Uuid::new_v4();
    let progress = Progress {
        fraction: 0.5,
        items_processed: Some(1),
        total_items: Some(2),
    };
    assert!(matches!(
        store.report_progress(forged, progress).await,
        Err(StoreError::ClaimLost(_))
    ));
    assert!(matches!(
        store
            .finish(
                forged,
                Outcome::Completed {
                    result: json!(null)
                }
            )
            .await,
        Err(StoreError::ClaimLost(_))
    ));
    let updated = store
        .report_progress(claimed.claim, progress)
        .await
        .unwrap();
    assert_eq!(updated.progress.items_processed, Some(1));

    // A cancelled job never turns completed: the claim died with the cancel.
    let cancelled = store.cancel(job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(matches!(
        store
            .finish(claimed.claim, Outcome::Completed { result: json!(1) })
            .await,
        Err(StoreError::ClaimLost(_))
    ));
    assert!(matches!(
        store.report_progress(claimed.claim, progress).await,
        Err(StoreError::ClaimLost(_))
    ));
    assert_eq!(
        store.get(job.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    assert!(matches!(
        store.cancel(job.id).await,
        Err(StoreError::Conflict {
            current: JobStatus::Cancelled,
            ..
        })
    ));
}

pub async fn terminal_jobs_only_move_by_restart(backend: &dyn Backend) {
    let store = backend.open().await;
    let job = store.submit(new_job("u")).await.unwrap();
    assert!(matches!(
        store.restart(job.id, None).await,
        Err(StoreError::Conflict {
            current: JobStatus::Pending,
            ..
        })
    ));
    let claimed = claim_one(store.as_ref()).await;
    let done = store
        .finish(
            claimed.claim,
            Outcome::Completed {
                result: json!({"x": 1}),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.progress.fraction, 1.0);
    assert!(matches!(
        store.cancel(job.id).await,
        Err(StoreError::Conflict {
            current: JobStatus::Completed,
            ..
        })
    ));
    assert!(matches!(
        store.restart(job.id, None).await,
        Err(StoreError::Conflict {
            current: JobStatus::Completed,
            ..
        })
    ));
    assert!(matches!(
        store.get(uuid::Uuid::now_v7()).await,
        Err(StoreError::NotFound(_))
    ));

    let failing = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_one(store.as_ref()).await;
    let retry_at = store.clock().now() + 60_000;
    let scheduled = store
        .finish(
            claimed.claim,
            Outcome::Failed {
                error: "e1".into(),
                retry_at: Some(retry_at),
            },
        )
        .await
        .unwrap();
    assert_eq!(scheduled.status, JobStatus::Scheduled);
    assert_eq!(scheduled.scheduled_for, Some(retry_at));
    assert_eq!(store.next_due().await.unwrap(), Some(retry_at));
    assert_eq!(store.promote_due().await.unwrap(), 0, "not due yet");
    backend.advance(60_000);
    assert_eq!(store.promote_due().await.unwrap(), 1);
    let claimed = claim_one(store.as_ref()).await;
    assert_eq!(claimed.job.attempts, 2);
    // The retry's claim clears what the failed attempt left, in the store
    // as in the claimed job.
    let running = store.get(failing.id).await.unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!((running.attempts, running.error), (2, None));
    assert_eq!(claimed.job.error, None);
    let failed = store
        .finish(
            claimed.claim,
            Outcome::Failed {
                error: "e2".into(),
                retry_at: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    let restarted = store
        .restart(failing.id, Some(json!({"fresh": true})))
        .await
        .unwrap();
    assert_eq!(restarted.status, JobStatus::Pending);
    assert_eq!(restarted.parameters, json!({"fresh": true}));
    assert_eq!((restarted.attempts, restarted.error.as_deref()), (0, None));
}

pub async fn expired_leases_are_recovered_without_spending_an_attempt(backend: &dyn Backend) {
    let store = backend.open().await;
    let job = store.submit(new_job("u")).await.unwrap();
    let params = claim_params("dead-worker", 1);
    let claimed = store.claim(&params).await.unwrap().remove(0);
    let recover = recover_params(1);
    backend.advance(LEASE + 1);
    let report = store.recover_expired(&recover).await.unwrap();
    assert_eq!(report.requeued, vec![job.id]);
    let requeued = store.get(job.id).await.unwrap();
    assert_eq!(requeued.status, JobStatus::Pending);
    assert_eq!((requeued.attempts, requeued.interruptions), (0, 1));
    assert!(
        matches!(
            store
                .finish(claimed.claim, Outcome::Completed { result: json!(1) })
                .await,
            Err(StoreError::ClaimLost(_))
        ),
        "the lost worker's late result is rejected"
    );

    // Interrupted once more than allowed: failed as worker lost.
    store.claim(&params).await.unwrap();
    backend.advance(LEASE + 1);
    let report = store.recover_expired(&recover).await.unwrap();
    assert_eq!(report.failed, vec![job.id]);
    let failed = store.get(job.id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.unwrap().contains("worker lost"));
}

pub async fn heartbeats_extend_leases_and_report_lost_claims(backend: &dyn Backend) {
    let store = backend.open().await;
    let info = jobd::store::WorkerInfo {
        worker_id: "hb".into(),
        host: "h".into(),
        pid: 1,
        started_at: store.clock().now(),
        concurrency: 2,
        serves: jobd::store::Serves::BuiltIn,
    };
    let a = store.submit(new_job("u")).await.unwrap();
    let b = store.submit(new_job("u")).await.unwrap();
    let mut params = claim_params("hb", 2);
    params.lease = span(100);
    let claimed = store.claim(&params).await.unwrap();
    assert_eq!(claimed.len(), 2);
    store.cancel(b.id).await.unwrap();
    let held: Vec<_> = claimed.iter().map(|c| c.claim).collect();
    let lost = store.heartbeat(&info, &held, span(LEASE)).await.unwrap();
    assert_eq!(lost, vec![b.id]);
    // Past the claim's lease, within the heartbeat's.
    backend.advance(SECOND);
    let report = store.recover_expired(&recover_params(3)).await.unwrap();
    assert!(report.requeued.is_empty(), "the renewed lease holds");
    let stats = store.stats(span(2 * SECOND)).await.unwrap();
    assert_eq!(stats.active_workers, 1);
    let stats = store.stats(span(SECOND / 2)).await.unwrap();
    assert_eq!(
        (stats.active_workers, stats.stale_workers),
        (0, 1),
        "silent for a second"
    );
    let workers = store.workers().await.unwrap();
    assert_eq!(workers[0].running_jobs, vec![a.id]);
    store.unregister_worker("hb").await.unwrap();
    assert!(store.workers().await.unwrap().is_empty());

    // A worker silent past the stale threshold is removed.
    store.heartbeat(&info, &[], span(LEASE)).await.unwrap();
    let stale_after = RecoverParams {
        stale_worker_after: span(HOUR),
        ..recover_params(3)
    };
    backend.advance(HOUR);
    let report = store.recover_expired(&stale_after).await.unwrap();
    assert_eq!(report.stale_workers_removed, 0, "silent for the threshold");
    backend.advance(1);
    let report = store.recover_expired(&stale_after).await.unwrap();
    assert_eq!(report.stale_workers_removed, 1);
    assert!(store.workers().await.unwrap().is_empty());
}

/// A released job (graceful shutdown) goes back to the front of its user's
/// queue, not behind the jobs submitted after it, with no attempt spent.
pub async fn release_puts_a_job_back_at_the_front_without_spending_an_attempt(
    backend: &dyn Backend,
) {
    let store = backend.open().await;
    let first = store.submit(new_job("u")).await.unwrap();
    let second = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_one(store.as_ref()).await;
    assert_eq!(claimed.job.id, first.id, "FIFO within a user");
    assert_eq!(claimed.job.attempts, 1);
    store.release(&[claimed.claim]).await.unwrap();
    let released = store.get(first.id).await.unwrap();
    assert_eq!(released.status, JobStatus::Pending);
    assert_eq!(released.attempts, 0, "the attempt is given back");
    assert_eq!(released.worker_id, None);
    let again = claim_one(store.as_ref()).await;
    assert_eq!(
        again.job.id, first.id,
        "the released job is claimed before {}",
        second.id
    );
    assert_eq!(again.job.attempts, 1);
    // A claim no longer held is skipped.
    store.cancel(first.id).await.unwrap();
    store.release(&[again.claim]).await.unwrap();
    assert_eq!(
        store.get(first.id).await.unwrap().status,
        JobStatus::Cancelled
    );
}

pub async fn a_dead_workers_jobs_are_recovered_at_once(backend: &dyn Backend) {
    let store = backend.open().await;
    let now = store.clock().now();
    let info = |worker_id: &str| jobd::store::WorkerInfo {
        worker_id: worker_id.into(),
        host: "h".into(),
        pid: 1,
        started_at: now,
        concurrency: 1,
        serves: jobd::store::Serves::BuiltIn,
    };
    let dead = store.submit(new_job("u")).await.unwrap();
    let alive = store.submit(new_job("v")).await.unwrap();
    let mut claims = Vec::new();
    for worker in ["dead", "alive"] {
        let claimed = store.claim(&claim_params(worker, 1)).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let held = [claimed[0].claim];
        store
            .heartbeat(&info(worker), &held, span(LEASE))
            .await
            .unwrap();
        claims.push(claimed[0].claim);
    }
    let report = store
        .recover_expired(&RecoverParams {
            dead_workers: vec!["dead".into()],
            ..recover_params(3)
        })
        .await
        .unwrap();
    let dead_job = if claims[0].job_id == dead.id {
        dead.id
    } else {
        alive.id
    };
    assert_eq!(
        report.requeued,
        vec![dead_job],
        "only the dead worker's job, before its lease"
    );
    let requeued = store.get(dead_job).await.unwrap();
    assert_eq!(requeued.status, JobStatus::Pending);
    assert_eq!((requeued.attempts, requeued.interruptions), (0, 1));
    let workers: Vec<String> = store
        .workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.info.worker_id)
        .collect();
    assert_eq!(workers, vec!["alive".to_string()]);
}

pub async fn cleanup_removes_only_expired_terminal_jobs(backend: &dyn Backend) {
    let store = backend.open().await;
    let done = store.submit(new_job("v")).await.unwrap();
    let claimed = claim_one(store.as_ref()).await;
    store
        .finish(claimed.claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    let pending = store.submit(new_job("u")).await.unwrap();
    let cancelled = store.submit(new_job("w")).await.unwrap();
    store.cancel(cancelled.id).await.unwrap();

    backend.advance(2 * HOUR);
    let report = store
        .cleanup(&CleanupParams {
            completed_retention: span(DAY),
            failed_retention: span(HOUR),
            audit_retention: std::time::Duration::MAX,
        })
        .await
        .unwrap();
    assert_eq!(
        report.jobs_deleted, 1,
        "only the cancelled job is past its retention"
    );
    assert!(store.get(done.id).await.is_ok());
    let report = store
        .cleanup(&CleanupParams {
            completed_retention: span(HOUR),
            failed_retention: span(HOUR),
            audit_retention: std::time::Duration::MAX,
        })
        .await
        .unwrap();
    assert_eq!(report.jobs_deleted, 1);
    assert_eq!(
        store.get(pending.id).await.unwrap().status,
        JobStatus::Pending,
        "pending jobs are never deleted by age"
    );
    let stats = store.stats(Duration::ZERO).await.unwrap();
    assert_eq!(stats.last_cleanup, Some(store.clock().now()));
    let total: u64 = stats.counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 1);
    let listed = store
        .list(&ListQuery {
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.jobs.len(), 1);
}

/// A chain of dependent jobs is stored in one step, all or none: a job may
/// depend on one earlier in the call, and an unknown dependency anywhere
/// stores nothing.
pub async fn a_chain_is_submitted_all_or_nothing(backend: &dyn Backend) {
    let store = backend.open().await;
    let a = new_job("u");
    let b = dependent("u", &[a.id]);
    let c = dependent("u", &[b.id, a.id]);
    let stored = store
        .submit_all(vec![a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    let ids: Vec<_> = stored.iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![a.id, b.id, c.id]);
    assert_eq!(stored[0].status, JobStatus::Pending);
    assert_eq!(
        (stored[1].status, stored[1].waiting_dependencies),
        (JobStatus::Scheduled, 1)
    );
    assert_eq!(
        (stored[2].status, stored[2].waiting_dependencies),
        (JobStatus::Scheduled, 2)
    );
    for job in &stored {
        let read = store.get(job.id).await.unwrap();
        assert_eq!(
            (
                read.status,
                read.waiting_dependencies,
                &read.depends_on,
                read.revision
            ),
            (
                job.status,
                job.waiting_dependencies,
                &job.depends_on,
                job.revision
            ),
            "what submit returned is what is stored"
        );
    }

    let missing = jobd::model::new_job_id();
    let x = new_job("v");
    let y = dependent("v", &[x.id]);
    let z = dependent("v", &[y.id, missing]);
    let refused = store
        .submit_all(vec![x.clone(), y.clone(), z.clone()])
        .await;
    assert!(
        matches!(refused, Err(StoreError::UnknownDependency(id)) if id == missing),
        "{refused:?}"
    );
    for id in [x.id, y.id, z.id] {
        assert!(
            matches!(store.get(id).await, Err(StoreError::NotFound(_))),
            "nothing of the refused chain was stored"
        );
    }
    let stats = store.stats(Duration::ZERO).await.unwrap();
    let total: u64 = stats.counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 3, "only the first chain's jobs exist");
}

/// Stores answer a submission from what they decided rather than reading
/// the rows back; what they answer must be exactly what they stored, on
/// every path: pending, delayed, waiting for a dependency, cancelled by a
/// failed one, with a key, a deadline, a time limit and parameters.
pub async fn what_submit_answers_is_what_is_stored(backend: &dyn Backend) {
    let store = backend.open().await;
    let failed = store.submit(new_job("u")).await.unwrap();
    store.cancel(failed.id).await.unwrap();
    let now = store.clock().now();
    let plain = NewJob {
        parameters: json!({"text": "a", "n": [1, 2.5, null]}),
        priority: 3,
        max_attempts: 4,
        timeout_seconds: Some(1.5),
        concurrency_key: Some("set-1".into()),
        expires_in: Some(60_000),
        ..new_job("u")
    };
    let delayed = NewJob {
        run_at: Some(now + 5_000),
        ..new_job("v")
    };
    let waiting = dependent("u", &[plain.id]);
    let cancelled = dependent("v", &[failed.id, plain.id]);
    let mut answered = store
        .submit_all(vec![plain, delayed, waiting, cancelled])
        .await
        .unwrap();
    let statuses: Vec<_> = answered.iter().map(|job| job.status).collect();
    assert_eq!(
        statuses,
        [
            JobStatus::Pending,
            JobStatus::Scheduled,
            JobStatus::Scheduled,
            JobStatus::Cancelled
        ]
    );
    assert_eq!(answered[3].cancelled_by, Some(failed.id));
    assert!(answered[3].error.is_some());
    answered.push(store.submit(new_job("w")).await.unwrap());
    for job in answered {
        assert_eq!(store.get(job.id).await.unwrap(), job);
    }
}

/// A job id already stored refuses the whole call, wherever it is in it.
pub async fn a_taken_id_refuses_the_whole_call(backend: &dyn Backend) {
    let store = backend.open().await;
    let taken = store.submit(new_job("u")).await.unwrap();
    let fresh = new_job("u");
    let again = NewJob {
        id: taken.id,
        ..new_job("v")
    };
    let refused = store.submit_all(vec![fresh.clone(), again]).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(matches!(
        store.get(fresh.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.get(taken.id).await.unwrap(), taken);
}

pub async fn dependencies_gate_cascade_and_revive(backend: &dyn Backend) {
    let store = backend.open().await;
    let a = store.submit(new_job("u")).await.unwrap();
    let b = store.submit(dependent("u", &[a.id])).await.unwrap();
    let c = store.submit(dependent("u", &[b.id])).await.unwrap();
    assert_eq!(
        (b.status, b.waiting_dependencies),
        (JobStatus::Scheduled, 1)
    );
    assert_eq!(c.depends_on, vec![b.id]);

    // Only A is claimable; its completion releases B, not C.
    let claimed = claim_only(store.as_ref(), a.id).await;
    assert!(store.claim(&claim_params("w", 5)).await.unwrap().is_empty());
    store
        .finish(
            claimed.claim,
            Outcome::Completed {
                result: json!({"from": "a"}),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get(b.id).await.unwrap().status, JobStatus::Pending);
    assert_eq!(store.get(c.id).await.unwrap().status, JobStatus::Scheduled);

    // B fails: C is cancelled, naming B.
    let claimed = claim_only(store.as_ref(), b.id).await;
    store
        .finish(
            claimed.claim,
            Outcome::Failed {
                error: "bad".into(),
                retry_at: None,
            },
        )
        .await
        .unwrap();
    let cancelled = store.get(c.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.cancelled_by, Some(b.id));
    assert!(cancelled.error.unwrap().contains(&b.id.to_string()));

    // Restarting B revives C, which then runs after B.
    let restarted = store
        .restart(b.id, Some(json!({"fixed": true})))
        .await
        .unwrap();
    assert_eq!(restarted.status, JobStatus::Pending);
    let revived = store.get(c.id).await.unwrap();
    assert_eq!(
        (revived.status, revived.waiting_dependencies),
        (JobStatus::Scheduled, 1)
    );
    assert_eq!(revived.error, None);
    let claimed = claim_only(store.as_ref(), b.id).await;
    store
        .finish(claimed.claim, Outcome::Completed { result: json!(2) })
        .await
        .unwrap();
    let claimed = claim_only(store.as_ref(), c.id).await;
    assert_eq!(claimed.job.depends_on, vec![b.id]);
    store
        .finish(claimed.claim, Outcome::Completed { result: json!(3) })
        .await
        .unwrap();

    // A missing dependency is refused; a failed one cancels at once;
    // cancelling a job cancels its waiting dependents.
    assert!(matches!(
        store.submit(dependent("u", &[uuid::Uuid::now_v7()])).await,
        Err(StoreError::UnknownDependency(_))
    ));
    let d = store.submit(new_job("u")).await.unwrap();
    let e = store.submit(dependent("u", &[d.id, a.id])).await.unwrap();
    assert_eq!(e.waiting_dependencies, 1, "A is already complete");
    store.cancel(d.id).await.unwrap();
    let e = store.get(e.id).await.unwrap();
    assert_eq!(
        (e.status, e.cancelled_by),
        (JobStatus::Cancelled, Some(d.id))
    );
    let f = store.submit(dependent("u", &[d.id])).await.unwrap();
    assert_eq!(
        (f.status, f.cancelled_by),
        (JobStatus::Cancelled, Some(d.id))
    );
    let stats = store.stats(Duration::ZERO).await.unwrap();
    let count = |s: JobStatus| stats.counts.iter().find(|(x, _)| *x == s).unwrap().1;
    assert_eq!(count(JobStatus::Completed), 3);
    assert_eq!(count(JobStatus::Cancelled), 3);
    assert_eq!(count(JobStatus::Scheduled), 0);
}

/// The finished totals count every job that ended in a terminal status,
/// by any handle, and never go down: not when cleanup deletes the jobs,
/// not when a restart (or the revival of dependents it brings) takes a
/// job out of its terminal status. Retries scheduled are not failures.
pub async fn finished_totals_count_every_end_and_never_go_down(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let totals = |completed, failed, cancelled| FinishedTotals {
        completed,
        failed,
        cancelled,
    };
    assert_eq!(store.finished_totals().await.unwrap(), totals(0, 0, 0));

    let end = |outcome: Outcome| {
        let store = store.clone();
        async move {
            let claimed = claim_one(store.as_ref()).await;
            store.finish(claimed.claim, outcome).await.unwrap()
        }
    };
    store.submit(new_job("u")).await.unwrap();
    end(Outcome::Completed { result: json!(1) }).await;
    let failed = store.submit(new_job("u")).await.unwrap();
    let dependent = store.submit(dependent("u", &[failed.id])).await.unwrap();
    end(Outcome::Failed {
        error: "boom".into(),
        retry_at: None,
    })
    .await;
    assert_eq!(
        store.get(dependent.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    let retried = store.submit(new_job("u")).await.unwrap();
    let job = end(Outcome::Failed {
        error: "again".into(),
        retry_at: Some(store.clock().now() + HOUR),
    })
    .await;
    assert_eq!((job.id, job.status), (retried.id, JobStatus::Scheduled));
    let pending = store.submit(new_job("u")).await.unwrap();
    store.cancel(pending.id).await.unwrap();
    assert_eq!(store.finished_totals().await.unwrap(), totals(1, 1, 2));

    // The restart takes the failed job out of `failed` and revives its
    // cancelled dependent: the totals stay.
    store.restart(failed.id, None).await.unwrap();
    assert_eq!(
        store.get(dependent.id).await.unwrap().status,
        JobStatus::Scheduled
    );
    assert_eq!(store.finished_totals().await.unwrap(), totals(1, 1, 2));
    end(Outcome::Completed { result: json!(2) }).await;
    end(Outcome::Completed { result: json!(3) }).await;
    assert_eq!(store.finished_totals().await.unwrap(), totals(3, 1, 2));

    // Cleanup deletes every terminal job: the totals stay.
    backend.advance(DAY);
    let report = store
        .cleanup(&CleanupParams {
            completed_retention: Duration::ZERO,
            failed_retention: Duration::ZERO,
            audit_retention: std::time::Duration::MAX,
        })
        .await
        .unwrap();
    assert_eq!(report.jobs_deleted, 4);
    assert_eq!(count(store.as_ref(), JobStatus::Completed).await, 0);
    assert_eq!(store.finished_totals().await.unwrap(), totals(3, 1, 2));
}

/// A lease ends when the clock passes it, not at it; a heartbeat renews it
/// from the clock's time. No waiting: the clock is moved.
pub async fn a_lease_expires_when_the_clock_passes_it(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let job = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_only(store.as_ref(), job.id).await;
    let info = jobd::store::WorkerInfo {
        worker_id: FIXTURE_WORKER.into(),
        host: "h".into(),
        pid: 1,
        started_at: store.clock().now(),
        concurrency: 1,
        serves: jobd::store::Serves::BuiltIn,
    };
    backend.advance(LEASE);
    let report = store.recover_expired(&recover_params(3)).await.unwrap();
    assert!(report.requeued.is_empty(), "the lease ends now, not before");
    let lost = store
        .heartbeat(&info, &[claimed.claim], span(LEASE))
        .await
        .unwrap();
    assert!(lost.is_empty());
    backend.advance(LEASE);
    let report = store.recover_expired(&recover_params(3)).await.unwrap();
    assert!(
        report.requeued.is_empty(),
        "renewed from the heartbeat's time"
    );
    backend.advance(1);
    let report = store.recover_expired(&recover_params(3)).await.unwrap();
    assert_eq!(report.requeued, vec![job.id]);
    let requeued = store.get(job.id).await.unwrap();
    assert_eq!(requeued.status, JobStatus::Pending);
    assert_eq!(requeued.updated_at, store.clock().now());
}
