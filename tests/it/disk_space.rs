//! Disk space given back: once retention deleted the jobs, the SQLite file
//! and its write-ahead log shrink to a few megabytes again, instead of
//! keeping every page the jobs ever used (issue 13: 470 MiB, 99% free).

use std::path::Path;
use std::time::{Duration, Instant};

use jobd::config::Synchronous;
use jobd::events::EventBus;
use jobd::model::{ManualClock, NewJob, now_millis};
use jobd::store::sqlite::SqliteStore;
use jobd::store::{ClaimParams, CleanupParams, Outcome, Store};
use serde_json::json;

const MIB: u64 = 1 << 20;

/// Jobs filled, in submissions of [`BATCH`], each with [`PARAMETER_BYTES`]
/// of parameters: about 16 MiB in all.
const JOBS: usize = 1_000;
const BATCH: usize = 100;
const PARAMETER_BYTES: usize = 16 * 1024;

/// The database file and its write-ahead log, in bytes.
fn sizes(dir: &Path) -> (u64, u64) {
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    (size("jobd.sqlite3"), size("jobd.sqlite3-wal"))
}

#[tokio::test]
async fn retention_gives_the_deleted_jobs_disk_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(now_millis());
    let store = SqliteStore::open(
        dir.path(),
        Synchronous::Normal,
        EventBus::new(),
        clock.clock(),
        None,
    )
    .await
    .unwrap();
    let filler = "x".repeat(PARAMETER_BYTES);
    for _ in 0..JOBS / BATCH {
        let jobs = (0..BATCH)
            .map(|_| NewJob {
                parameters: json!({ "filler": filler }),
                ..NewJob::new("noop", "u")
            })
            .collect();
        store.submit_all(jobs).await.unwrap();
    }
    let params = ClaimParams {
        worker_id: "w".into(),
        serves: jobd::store::Serves::BuiltIn,
        max_jobs: BATCH,
        global_max: BATCH,
        per_user_max: BATCH,
        limits: Default::default(),
        lease: Duration::from_secs(60),
    };
    let mut completed = 0;
    for _ in 0..JOBS / BATCH {
        let claimed = store.claim(&params).await.unwrap();
        // Finished together, so they share commits.
        let finishing = claimed.iter().map(|claimed| {
            let result = json!("done");
            store.finish(claimed.claim, Outcome::Completed { result })
        });
        for finished in futures::future::join_all(finishing).await {
            finished.unwrap();
            completed += 1;
        }
    }
    assert_eq!(completed, JOBS);
    let (peak_file, peak_log) = sizes(dir.path());
    assert!(
        peak_file + peak_log > 16 * MIB,
        "the jobs took space: {peak_file} + {peak_log} bytes"
    );

    clock.advance(Duration::from_secs(2 * 24 * 3600));
    let report = store
        .cleanup(&CleanupParams {
            completed_retention: Duration::from_secs(24 * 3600),
            failed_retention: Duration::from_secs(24 * 3600),
            audit_retention: std::time::Duration::MAX,
        })
        .await
        .unwrap();
    assert_eq!(report.jobs_deleted, JOBS);

    // The file is truncated when its log is copied back (the checkpoint
    // thread, within milliseconds). The log is cut back as it starts over
    // (at most once a second, in the first commit that writes pages), to
    // 16 MiB at the least: a job submitted every 20 ms stands for a
    // service's usual writes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (file, log) = sizes(dir.path());
        if file <= 6 * MIB && log <= 16 * MIB {
            break;
        }
        store.submit(NewJob::new("noop", "u")).await.unwrap();
        assert!(
            Instant::now() < deadline,
            "10 s after retention deleted every job, the file is {file} bytes and its log {log} \
             (at the peak {peak_file} and {peak_log}); wanted 6 MiB and 16 MiB at most"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
