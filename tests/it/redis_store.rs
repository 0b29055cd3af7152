//! Behaviour of the Redis store that has no SQLite counterpart: the
//! cluster-wide cleanup lock, clearing orphaned processing locks, and
//! keeping watch registrations alive.

use std::sync::Arc;
use std::time::Duration;

use jobd::events::EventBus;
use jobd::model::{ManualClock, NewJob, now_millis};
use jobd::store::{CleanupParams, Store};

use crate::support::{RedisServer, wait_until};

/// A cleanup pass that outlives its lock (another node took the lock over
/// after it expired) must leave the other node's lock in place: the lock is
/// given up by compare-and-delete, never by a bare `DEL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_never_deletes_another_nodes_lock() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let prefix = "lockcheck";
    let lock = format!("{{{prefix}}}:lock:cleanup");
    let clock = ManualClock::new(now_millis());
    let store: Arc<dyn Store> = jobd::store::redis::RedisStore::open(
        &server.url,
        prefix,
        EventBus::new(),
        Duration::from_secs(600),
        clock.clock(),
        None,
    )
    .await
    .unwrap();
    let client = redis::Client::open(server.url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();

    let mut hijacked_passes = 0;
    for _ in 0..5 {
        // Enough terminal jobs that the pass takes several batches.
        for _ in 0..2_000 {
            let job = store.submit(NewJob::new("noop", "u")).await.unwrap();
            store.cancel(job.id).await.unwrap();
        }
        // Every job cancelled is an hour past its retention.
        clock.advance(Duration::from_secs(7_200));
        let params = CleanupParams {
            completed_retention: Duration::from_secs(3_600),
            failed_retention: Duration::from_secs(3_600),
            audit_retention: std::time::Duration::MAX,
        };
        let pass = {
            let store = store.clone();
            tokio::spawn(async move { store.cleanup(&params).await })
        };
        // While the pass runs, another node "takes over" the lock whenever
        // it exists, as it would after the pass's lock expired.
        let mut took_over = false;
        while !pass.is_finished() {
            let set: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg("other-node")
                .arg("XX")
                .arg("PX")
                .arg(60_000)
                .query_async(&mut raw)
                .await
                .unwrap();
            took_over |= set.is_some();
        }
        let report = pass.await.unwrap().unwrap();
        assert!(report.jobs_deleted >= 2_000, "{report:?}");
        if took_over {
            hijacked_passes += 1;
            let holder: Option<String> = redis::cmd("GET")
                .arg(&lock)
                .query_async(&mut raw)
                .await
                .unwrap();
            assert_eq!(
                holder.as_deref(),
                Some("other-node"),
                "the pass deleted a lock it no longer held"
            );
        }
        let _: () = redis::cmd("DEL")
            .arg(&lock)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    assert!(
        hijacked_passes > 0,
        "no pass was overtaken; the check proved nothing"
    );
}

/// Cleanup clears a processing lock (an entry of the `running` set) whose
/// job no longer runs once it is older than the store's orphaned-lock age,
/// measured from the pass's time, and leaves a younger one alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_clears_orphaned_locks_past_their_age() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let prefix = "orphans";
    let running = format!("{{{prefix}}}:running");
    let now = now_millis();
    let store = jobd::store::redis::RedisStore::open(
        &server.url,
        prefix,
        EventBus::new(),
        Duration::from_secs(600),
        ManualClock::new(now).clock(),
        None,
    )
    .await
    .unwrap();
    let client = redis::Client::open(server.url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    // Locks of jobs that do not exist: one whose lease ended an hour ago,
    // one whose lease ended a minute ago.
    for (id, lease_end) in [
        ("old-ghost", now - 3_600_000),
        ("young-ghost", now - 60_000),
    ] {
        let _: () = redis::cmd("ZADD")
            .arg(&running)
            .arg(lease_end)
            .arg(id)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let params = CleanupParams {
        completed_retention: Duration::MAX,
        failed_retention: Duration::MAX,
        audit_retention: std::time::Duration::MAX,
    };
    store.cleanup(&params).await.unwrap();
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg(&running)
        .arg(0)
        .arg(-1)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(left, vec!["young-ghost".to_owned()]);
}

/// A process that watches a job keeps its registration in `watched` alive
/// by itself, workers or not. It used to be refreshed by the worker
/// heartbeat only, so on an API node with `--workers 0` it lapsed after
/// 60 s, the next cleanup pass removed it, and the node's streams heard of
/// no change made elsewhere again (a stream of a 90 s job run by a
/// `jobd worker` got its updates for 60 s, then nothing, not even
/// `job_complete`).
#[tokio::test]
async fn watch_registrations_are_refreshed_without_a_worker() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let prefix = "refresh";
    let clock = ManualClock::new(now_millis());
    let store = jobd::store::redis::RedisStore::open(
        &server.url,
        prefix,
        EventBus::new(),
        Duration::from_secs(600),
        clock.clock(),
        None,
    )
    .await
    .unwrap();
    let job = store.submit(NewJob::new("noop", "u")).await.unwrap();
    let (_watch, _) = store.watch(job.id).await.unwrap();
    let client = redis::Client::open(server.url.as_str()).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();
    let expiry = || {
        let mut raw = raw.clone();
        async move {
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg(format!("{{{prefix}}}:watched"))
                .arg(job.id.to_string())
                .query_async(&mut raw)
                .await
                .unwrap();
            score.unwrap_or(0.0) as i64
        }
    };
    let registered = expiry().await;
    assert!(registered > 0, "the watch is registered");
    // Half its life later, by the store's clock.
    clock.advance(Duration::from_secs(30));
    wait_until(
        "the registration to be refreshed",
        Duration::from_secs(25),
        || async { (expiry().await > registered).then_some(()) },
    )
    .await;
}
