//! Which job a claim takes, where a job joins its user's queue, what a
//! listing shows, and what retention deletes. Each rule on a fresh store,
//! so that it sees only its own jobs.

use jobd::model::{Job, JobId, JobStatus, Millis, NewJob};
use jobd::store::{CleanupParams, ListQuery, Outcome, Store, StoreError};

use super::*;

/// Claims one job at a time until none is left; returns their ids.
async fn drain(store: &dyn Store) -> Vec<JobId> {
    let mut ids = Vec::new();
    loop {
        let claimed = store.claim(&claim_params("w", 1)).await.unwrap();
        match claimed.as_slice() {
            [] => return ids,
            [one] => ids.push(one.job.id),
            more => panic!("asked for one job, got {}", more.len()),
        }
    }
}

async fn submit(store: &dyn Store, new: NewJob) -> JobId {
    store.submit(new).await.unwrap().id
}

fn with_priority(user: &str, priority: i32) -> NewJob {
    NewJob {
        priority,
        ..new_job(user)
    }
}

/// Users are served round-robin, least recently served first (a user never
/// served before any other; ties by user id), one job per user per turn,
/// so that a long queue delays another user by one round at most. A claim
/// of several jobs shares them out the same way.
pub async fn users_are_served_round_robin_least_recently_served_first(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let a1 = submit(store, new_job("a")).await;
    let a2 = submit(store, new_job("a")).await;
    let a3 = submit(store, new_job("a")).await;
    let c1 = submit(store, new_job("c")).await;
    let c2 = submit(store, new_job("c")).await;
    let b1 = submit(store, new_job("b")).await;
    assert_eq!(drain(store).await, vec![a1, b1, c1, a2, c2, a3]);

    // One claim of three over three users with long queues: one each.
    for user in ["x", "y", "z"] {
        for _ in 0..3 {
            submit(store, new_job(user)).await;
        }
    }
    let claimed = store.claim(&claim_params("w", 3)).await.unwrap();
    let mut users: Vec<String> = claimed.into_iter().map(|c| c.job.user_id).collect();
    users.sort();
    assert_eq!(users, ["x", "y", "z"]);
}

/// Within a user: higher priority first, then first in, first out.
pub async fn within_a_user_priority_then_fifo(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let j1 = submit(store, with_priority("u", 0)).await;
    let j2 = submit(store, with_priority("u", 5)).await;
    let j3 = submit(store, with_priority("u", 0)).await;
    let j4 = submit(store, with_priority("u", 5)).await;
    let j5 = submit(store, with_priority("u", -1)).await;
    assert_eq!(drain(store).await, vec![j2, j4, j1, j3, j5]);
}

/// A promoted job joins its user's queue by its priority; promoted
/// together, jobs queue by due time (not by submission), after the jobs
/// queued before they were due.
pub async fn promotion_queues_by_priority_then_due_time(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let now = store.clock().now();
    let at = |due, priority| NewJob {
        run_at: Some(now + due),
        priority,
        ..new_job("u")
    };
    let queued = submit(store, new_job("u")).await;
    let later = submit(store, at(2 * HOUR, 0)).await;
    let sooner = submit(store, at(HOUR, 0)).await;
    let urgent = submit(store, at(3 * HOUR, 5)).await;
    backend.advance(4 * HOUR);
    assert_eq!(store.promote_due().await.unwrap(), 3);
    assert_eq!(count(store, JobStatus::Pending).await, 4);
    assert_eq!(drain(store).await, vec![urgent, queued, sooner, later]);
}

/// A job due before another was submitted is claimed before it, however
/// late the promotion ran: its place is its due time, not the moment the
/// scheduler got to it.
pub async fn a_job_due_earlier_is_queued_earlier(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let retried = submit(store, new_job("u")).await;
    let claimed = claim_only(store, retried).await;
    let due = store.clock().now() + SECOND;
    store
        .finish(
            claimed.claim,
            Outcome::Failed {
                error: "e".into(),
                retry_at: Some(due),
            },
        )
        .await
        .unwrap();
    // Submitted once the retry was due, before anything promoted it.
    backend.advance(2 * SECOND);
    let submitted = submit(store, new_job("u")).await;
    assert!(store.get(submitted).await.unwrap().created_at > due);
    assert_eq!(drain(store).await, vec![retried, submitted]);
}

/// A user whose queue ran empty keeps its place in the rotation: when it
/// queues again, a user served less recently (here: never) goes first.
pub async fn a_user_whose_queue_emptied_keeps_its_turn(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let a1 = submit(store, new_job("a")).await;
    claim_only(store, a1).await;
    // A claim that finds "a"'s queue empty (idle workers poll like this).
    assert!(store.claim(&claim_params("w", 1)).await.unwrap().is_empty());
    let d1 = submit(store, new_job("d")).await;
    let a2 = submit(store, new_job("a")).await;
    assert_eq!(drain(store).await, vec![d1, a2], "d was never served");
}

/// A released job keeps its place: claimed again before the jobs queued
/// behind it, and behind a higher priority.
pub async fn a_released_job_keeps_its_place_in_the_queue(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let j1 = submit(store, new_job("u")).await;
    let j2 = submit(store, new_job("u")).await;
    let j3 = submit(store, new_job("u")).await;
    let first = claim_only(store, j1).await;
    let second = claim_only(store, j2).await;
    let urgent = submit(store, with_priority("u", 5)).await;
    // Released in the other order: the queue order is theirs, not the
    // release's.
    store.release(&[second.claim]).await.unwrap();
    store.release(&[first.claim]).await.unwrap();
    assert_eq!(drain(store).await, vec![urgent, j1, j2, j3]);
}

/// A job recovered from a lost worker, or restarted, joins the back of its
/// user's queue.
pub async fn a_recovered_or_restarted_job_goes_to_the_back(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let lost = submit(store, new_job("u")).await;
    let failed = submit(store, new_job("u")).await;
    let waiting = submit(store, new_job("u")).await;
    let params = claim_params("dead", 1);
    assert_eq!(store.claim(&params).await.unwrap()[0].job.id, lost);
    let claimed = claim_only(store, failed).await;
    let outcome = Outcome::Failed {
        error: "e".into(),
        retry_at: None,
    };
    store.finish(claimed.claim, outcome).await.unwrap();
    backend.advance(LEASE + 1);
    let report = store.recover_expired(&recover_params(3)).await.unwrap();
    assert_eq!(report.requeued, vec![lost]);
    store.restart(failed, None).await.unwrap();
    assert_eq!(drain(store).await, vec![waiting, lost, failed]);
}

/// What a listing shows of the jobs: ids, in order.
async fn listed(store: &dyn Store, query: ListQuery) -> Vec<JobId> {
    let page = store.list(&query).await.unwrap();
    for job in &page.jobs {
        assert_eq!(
            *job,
            store.get(job.id).await.unwrap(),
            "a listed job is whole"
        );
    }
    page.jobs.iter().map(|job| job.id).collect()
}

/// A listing of whole jobs, `limit` a page.
fn query(limit: usize) -> ListQuery {
    ListQuery {
        limit,
        with_parameters: true,
        with_result: true,
        ..ListQuery::default()
    }
}

/// Listing reads `parameters` and `result` only when asked for: by
/// default a listed job is the stored job with `parameters` null and no
/// `result`; either or both are added on request, the rest unchanged.
pub async fn listing_reads_parameters_and_result_only_when_asked(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let new = NewJob {
        parameters: json!({"blob": "p".repeat(10_000)}),
        ..new_job("u")
    };
    let id = submit(store, new).await;
    let claimed = claim_only(store, id).await;
    store
        .finish(
            claimed.claim,
            Outcome::Completed {
                result: json!({"out": "r".repeat(10_000)}),
            },
        )
        .await
        .unwrap();
    let whole = store.get(id).await.unwrap();
    assert!(whole.result.is_some());
    for (with_parameters, with_result) in
        [(false, false), (true, false), (false, true), (true, true)]
    {
        let page = store
            .list(&ListQuery {
                limit: 10,
                with_parameters,
                with_result,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        let expected = Job {
            parameters: if with_parameters {
                whole.parameters.clone()
            } else {
                serde_json::Value::Null
            },
            result: whole.result.clone().filter(|_| with_result),
            ..whole.clone()
        };
        assert_eq!(
            page.jobs,
            vec![expected],
            "parameters {with_parameters}, result {with_result}"
        );
    }
}

/// `missing` names exactly the ids the store does not hold.
pub async fn missing_names_the_jobs_not_held(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let held = submit(store, new_job("u")).await;
    let unknown = jobd::model::new_job_id();
    assert_eq!(
        store.missing(&[held, unknown]).await.unwrap(),
        vec![unknown]
    );
    assert_eq!(store.missing(&[]).await.unwrap(), Vec::<JobId>::new());
}

/// A listing's byte bound: the page ends before the job whose
/// `parameters`, `result` and `error` would pass `max_bytes` (always at
/// least one job), with `next_cursor` at the last job kept, so following
/// the cursors lists every job once.
pub async fn listing_stops_at_its_byte_bound(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let new = NewJob {
            parameters: json!({"blob": "p".repeat(1_000)}),
            ..new_job("u")
        };
        ids.push(submit(store, new).await);
    }
    ids.reverse();
    let mut listed = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(&ListQuery {
                limit: 10,
                before,
                with_parameters: true,
                max_bytes: 2_500,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.jobs.len() <= 2, "a page of {} jobs", page.jobs.len());
        listed.extend(page.jobs.iter().map(|job| job.id));
        match page.next_cursor {
            Some(cursor) if pages < 10 => before = Some(cursor),
            _ => break,
        }
    }
    assert_eq!(listed, ids);
    assert_eq!(pages, 3);
    // A single job over the bound still makes a page.
    let page = store
        .list(&ListQuery {
            limit: 10,
            with_parameters: true,
            max_bytes: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.next_cursor, Some(ids[0]));
    // Summaries do not count what they leave out.
    let page = store
        .list(&ListQuery {
            limit: 10,
            max_bytes: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 5);
}

/// Listing: newest first, filtered by status, user and job type alone or
/// together; each listed job is whole.
pub async fn listing_filters_newest_first(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    // (user, type, cancelled)
    let shapes = [
        ("u1", "noop", false),
        ("u2", "noop", true),
        ("u1", "sleep", true),
        ("u2", "sleep", false),
        ("u1", "noop", true),
        ("u1", "sleep", false),
    ];
    let mut jobs: Vec<Job> = Vec::new();
    for (user, job_type, cancel) in shapes {
        let new = NewJob {
            job_type: job_type.into(),
            ..new_job(user)
        };
        let id = submit(store, new).await;
        if cancel {
            store.cancel(id).await.unwrap();
        }
        jobs.push(store.get(id).await.unwrap());
    }
    let newest_first = |keep: &dyn Fn(&Job) -> bool| -> Vec<JobId> {
        jobs.iter()
            .rev()
            .filter(|j| keep(j))
            .map(|j| j.id)
            .collect()
    };
    assert_eq!(listed(store, query(100)).await, newest_first(&|_| true));
    let by_status = ListQuery {
        status: Some(JobStatus::Cancelled),
        ..query(100)
    };
    assert_eq!(
        listed(store, by_status).await,
        newest_first(&|j| j.status == JobStatus::Cancelled)
    );
    let by_user = ListQuery {
        user_id: Some("u2".into()),
        ..query(100)
    };
    assert_eq!(
        listed(store, by_user).await,
        newest_first(&|j| j.user_id == "u2")
    );
    let by_type = ListQuery {
        job_type: Some("sleep".into()),
        ..query(100)
    };
    assert_eq!(
        listed(store, by_type).await,
        newest_first(&|j| j.job_type == "sleep")
    );
    let all_three = ListQuery {
        status: Some(JobStatus::Pending),
        user_id: Some("u1".into()),
        job_type: Some("noop".into()),
        ..query(100)
    };
    assert_eq!(
        listed(store, all_three).await,
        newest_first(&|j| j.status == JobStatus::Pending
            && j.user_id == "u1"
            && j.job_type == "noop")
    );
    let nobody = ListQuery {
        user_id: Some("nobody".into()),
        ..query(100)
    };
    let page = store.list(&nobody).await.unwrap();
    assert!(page.jobs.is_empty() && page.next_cursor.is_none());
}

/// Follows `next_cursor` from the first page; returns the pages' ids.
async fn pages(store: &dyn Store, first: ListQuery) -> Vec<Vec<JobId>> {
    let mut pages = Vec::new();
    let mut query = first;
    loop {
        let page = store.list(&query).await.unwrap();
        pages.push(page.jobs.iter().map(|job| job.id).collect());
        match page.next_cursor {
            Some(cursor) => {
                assert_eq!(Some(cursor), page.jobs.last().map(|j| j.id));
                query.before = Some(cursor);
            }
            None => return pages,
        }
        assert!(pages.len() < 100, "paging never ends");
    }
}

/// Paging: `limit` jobs per page, `before` the previous page's last id
/// (its `next_cursor`), newest first, filters kept across pages. A page
/// shorter than `limit` is the last (`next_cursor` None); a full page has
/// a cursor even when no job follows, and the page after it is empty.
pub async fn listing_pages_by_cursor(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = submit(store, new_job(if i % 2 == 0 { "even" } else { "odd" })).await;
        ids.push(id);
    }
    ids.reverse();
    let (j5, j4, j3, j2, j1) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    assert_eq!(
        pages(store, query(2)).await,
        vec![vec![j5, j4], vec![j3, j2], vec![j1]]
    );
    // Five jobs, pages of five: one full page, then an empty one.
    assert_eq!(pages(store, query(5)).await, vec![ids.clone(), vec![]]);
    let even = ListQuery {
        user_id: Some("even".into()),
        ..query(2)
    };
    assert_eq!(pages(store, even).await, vec![vec![j5, j3], vec![j1]]);
    // A cursor from the middle starts after it.
    let after_j4 = ListQuery {
        before: Some(j4),
        ..query(10)
    };
    assert_eq!(listed(store, after_j4).await, vec![j3, j2, j1]);
}

/// Retention: completed jobs finished longer than `completed_retention`
/// ago, failed and cancelled ones longer than `failed_retention` ago are
/// deleted (strictly longer: a job exactly its retention old stays);
/// pending, scheduled (for a time or a dependency) and running jobs never,
/// however old.
pub async fn retention_deletes_terminal_jobs_by_age_per_status(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let mut jobs = Vec::new();
    // Claimed fixtures first: each claim must find only its own job.
    for start in [
        Start::Running,
        Start::Completed,
        Start::Failed,
        Start::Cancelled,
        Start::Pending,
        Start::ScheduledByTime,
        Start::WaitingForDependency,
    ] {
        jobs.push((start, job_in(store, start).await.0));
    }
    // The clock stood still: every terminal job finished now.
    let finished = store.clock().now();
    for (start, job) in &jobs {
        if start.status().is_terminal() {
            assert_eq!(job.completed_at, Some(finished), "{start:?}");
        }
    }
    let cleanup = |completed: Millis, failed: Millis| async move {
        store
            .cleanup(&CleanupParams {
                completed_retention: span(completed),
                failed_retention: span(failed),
                audit_retention: std::time::Duration::MAX,
            })
            .await
    };
    let age = 10 * DAY;
    backend.advance(age);
    // Exactly their retention old: nothing goes.
    let report = cleanup(age, age).await.unwrap();
    assert_eq!(report.jobs_deleted, 0);
    // Completed ones by their own retention.
    let report = cleanup(age - 1, age).await.unwrap();
    assert_eq!(report.jobs_deleted, 1);
    // Failed and cancelled ones by theirs.
    let report = cleanup(age, age - 1).await.unwrap();
    assert_eq!(report.jobs_deleted, 2);
    for (start, job) in &jobs {
        let read = store.get(job.id).await;
        if start.status().is_terminal() {
            assert!(
                matches!(read, Err(StoreError::NotFound(_))),
                "{start:?} is deleted"
            );
        } else {
            assert_eq!(read.unwrap(), *job, "{start:?} stays, unchanged");
        }
    }
    // Nothing else goes at any age; what is gone is gone from every view.
    let report = cleanup(0, 0).await.unwrap();
    assert_eq!(report.jobs_deleted, 0);
    let stats = store.stats(Duration::ZERO).await.unwrap();
    assert_eq!(stats.last_cleanup, Some(finished + age));
    for status in [
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ] {
        assert_eq!(count(store, status).await, 0, "{status}");
    }
    // Running, pending, scheduled, waiting, and the waiting job's blocker.
    let listed = store.list(&query(100)).await.unwrap();
    assert_eq!(listed.jobs.len(), 5);
}

/// A scheduled job comes due when the clock reaches its time: promoted by
/// `promote_due`, or by a claim, which promotes due jobs first. No
/// waiting: the clock is moved.
pub async fn a_scheduled_job_comes_due_when_the_clock_reaches_it(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let start = store.clock().now();
    let at = |due| NewJob {
        run_at: Some(start + due),
        ..new_job("u")
    };
    let first = submit(store, at(HOUR)).await;
    let second = submit(store, at(2 * HOUR)).await;
    assert_eq!(store.next_due().await.unwrap(), Some(start + HOUR));
    assert_eq!(store.promote_due().await.unwrap(), 0);
    backend.advance(HOUR - 1);
    assert_eq!(store.promote_due().await.unwrap(), 0, "a millisecond early");
    assert!(store.claim(&claim_params("w", 2)).await.unwrap().is_empty());
    backend.advance(1);
    assert_eq!(store.promote_due().await.unwrap(), 1);
    let promoted = store.get(first).await.unwrap();
    assert_eq!(
        (promoted.status, promoted.updated_at),
        (JobStatus::Pending, start + HOUR)
    );
    claim_only(store, first).await;
    assert_eq!(store.next_due().await.unwrap(), Some(start + 2 * HOUR));
    backend.advance(HOUR);
    let claimed = claim_only(store, second).await;
    assert_eq!(claimed.job.started_at, Some(start + 2 * HOUR));
}

/// A terminal job is deleted once the clock has moved past its retention,
/// counted from when it finished; the pass is recorded at the clock's
/// time. No waiting: the clock is moved.
pub async fn a_job_outlives_its_retention_as_the_clock_moves(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let (completed, _) = job_in(store, Start::Completed).await;
    backend.advance(HOUR);
    let (failed, _) = job_in(store, Start::Failed).await;
    let retention = CleanupParams {
        completed_retention: span(2 * HOUR),
        failed_retention: span(HOUR),
        audit_retention: std::time::Duration::MAX,
    };
    backend.advance(HOUR);
    let report = store.cleanup(&retention).await.unwrap();
    assert_eq!(report.jobs_deleted, 0, "each exactly its retention old");
    backend.advance(1);
    let report = store.cleanup(&retention).await.unwrap();
    assert_eq!(report.jobs_deleted, 2);
    for id in [completed.id, failed.id] {
        assert!(matches!(store.get(id).await, Err(StoreError::NotFound(_))));
    }
    let stats = store.stats(Duration::ZERO).await.unwrap();
    assert_eq!(stats.last_cleanup, Some(store.clock().now()));
}
