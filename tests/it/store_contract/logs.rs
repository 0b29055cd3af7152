//! Per-job logs: appends under the claim, numbered and stamped by the
//! store, read back in pages from any handle; the cap dropping the oldest
//! lines; a lost claim refused; the log deleted with its job.

use jobd::model::JobStatus;
use jobd::store::{CleanupParams, LogLine, LogStream, MAX_LOG_LINE_BYTES, Outcome, StoreError};
use serde_json::json;

use super::*;

/// A cap no test reaches.
const NO_CAP: usize = 1 << 30;

fn lines(texts: &[&str]) -> Vec<LogLine> {
    texts
        .iter()
        .map(|text| LogLine::new(LogStream::Log, *text))
        .collect()
}

/// The texts of a page.
fn texts(page: &jobd::store::LogPage) -> Vec<String> {
    page.lines.iter().map(|line| line.text.clone()).collect()
}

pub async fn log_lines_are_appended_numbered_and_read_in_pages(backend: &dyn Backend) {
    let handle = backend.open_with_bus().await;
    let store = handle.store.clone();
    let job = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_only(store.as_ref(), job.id).await;

    let empty = store.read_log(job.id, 0, 10).await.unwrap();
    assert!(empty.lines.is_empty());
    assert_eq!((empty.next, empty.terminal()), (0, false));

    let mut appended = handle.bus.subscribe_logs();
    let at = store.clock().now();
    let written = vec![
        LogLine::new(LogStream::Log, "starting"),
        LogLine::new(LogStream::Stdout, "plain output\twith a tab"),
        LogLine::new(LogStream::Stderr, "warnung: Größe ≠ 0 🚀"),
        LogLine::new(LogStream::Log, ""),
    ];
    store
        .append_log(claimed.claim, &written, NO_CAP)
        .await
        .unwrap();
    assert_eq!(
        appended.try_recv().unwrap(),
        job.id,
        "this process hears of it"
    );
    backend.advance(SECOND);
    store
        .append_log(claimed.claim, &lines(&["fifth"]), NO_CAP)
        .await
        .unwrap();

    let first = store.read_log(job.id, 0, 3).await.unwrap();
    assert_eq!(
        first.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(first.next, 3);
    assert!(!first.terminal());
    for (line, sent) in first.lines.iter().zip(&written) {
        assert_eq!((line.stream, &line.text), (sent.stream, &sent.text));
        assert_eq!((line.at, line.attempt), (at, 1));
    }
    // Any handle reads the same log.
    let other = backend.open().await;
    let rest = other.read_log(job.id, first.next, 3).await.unwrap();
    assert_eq!(texts(&rest), vec!["".to_string(), "fifth".to_string()]);
    assert_eq!(rest.lines[1].at, at + SECOND);
    assert_eq!(rest.next, 5);
    let beyond = store.read_log(job.id, 99, 3).await.unwrap();
    assert!(beyond.lines.is_empty());
    assert_eq!(beyond.next, 99, "a read past the end keeps its position");

    store
        .finish(claimed.claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    let done = store.read_log(job.id, 0, 10).await.unwrap();
    assert!(done.terminal(), "a finished job's log is complete");
    assert_eq!(done.lines.len(), 5);

    let unknown = uuid::Uuid::now_v7();
    assert!(matches!(
        store.read_log(unknown, 0, 10).await,
        Err(StoreError::NotFound(id)) if id == unknown
    ));
}

pub async fn a_long_line_is_cut_and_many_lines_go_in_one_append(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let job = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_only(store.as_ref(), job.id).await;
    let long = "ß".repeat(MAX_LOG_LINE_BYTES);
    let mut batch = vec![LogLine::new(LogStream::Stderr, long)];
    batch.extend((0..1_500).map(|i| LogLine::new(LogStream::Stdout, format!("line {i}"))));
    store
        .append_log(claimed.claim, &batch, NO_CAP)
        .await
        .unwrap();
    let page = store.read_log(job.id, 0, 2_000).await.unwrap();
    assert_eq!(page.lines.len(), 1_501);
    assert!(page.lines[0].text.len() <= MAX_LOG_LINE_BYTES);
    assert!(page.lines[0].text.chars().all(|c| c == 'ß'));
    assert_eq!(page.lines[1_500].text, "line 1499");
    assert_eq!(page.next, 1_501);
}

pub async fn the_cap_drops_the_oldest_lines_and_numbers_go_on(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let job = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_only(store.as_ref(), job.id).await;
    let hundred = |i: usize| LogLine::new(LogStream::Log, format!("{i:03}{}", "x".repeat(97)));
    let cap = 550;
    let batch: Vec<LogLine> = (1..=10).map(hundred).collect();
    store.append_log(claimed.claim, &batch, cap).await.unwrap();
    let page = store.read_log(job.id, 0, 100).await.unwrap();
    assert_eq!(
        page.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10],
        "the fewest oldest lines that bring the log under its cap are dropped"
    );
    assert!(page.lines[0].text.starts_with("006"));

    store
        .append_log(claimed.claim, &[hundred(11)], cap)
        .await
        .unwrap();
    let page = store.read_log(job.id, 0, 100).await.unwrap();
    assert_eq!(
        page.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![7, 8, 9, 10, 11]
    );
    // A reader that was at line 3 goes on from the oldest line kept.
    let behind = store.read_log(job.id, 3, 2).await.unwrap();
    assert_eq!(
        behind.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![7, 8]
    );
    assert_eq!(behind.next, 8);
}

pub async fn a_lost_claim_writes_no_log(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let job = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_only(store.as_ref(), job.id).await;
    store
        .append_log(claimed.claim, &lines(&["kept"]), NO_CAP)
        .await
        .unwrap();

    let forged = ClaimRef {
        token: uuid::Uuid::new_v4(),
        ..claimed.claim
    };
    assert!(matches!(
        store.append_log(forged, &lines(&["forged"]), NO_CAP).await,
        Err(StoreError::ClaimLost(id)) if id == job.id
    ));
    store.cancel(job.id).await.unwrap();
    assert!(matches!(
        store.append_log(claimed.claim, &lines(&["late"]), NO_CAP).await,
        Err(StoreError::ClaimLost(id)) if id == job.id
    ));
    let nobody = ClaimRef {
        job_id: uuid::Uuid::now_v7(),
        token: uuid::Uuid::new_v4(),
    };
    assert!(matches!(
        store.append_log(nobody, &lines(&["x"]), NO_CAP).await,
        Err(StoreError::ClaimLost(_))
    ));
    let page = store.read_log(job.id, 0, 10).await.unwrap();
    assert_eq!(texts(&page), vec!["kept".to_string()]);
    assert!(page.terminal());
}

pub async fn a_retry_and_a_restart_keep_earlier_attempts_lines(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let new = jobd::model::NewJob {
        max_attempts: 2,
        ..new_job("u")
    };
    let job = store.submit(new).await.unwrap();
    let first = claim_only(store.as_ref(), job.id).await;
    store
        .append_log(first.claim, &lines(&["try 1"]), NO_CAP)
        .await
        .unwrap();
    let retry_at = store.clock().now() + SECOND;
    store
        .finish(
            first.claim,
            Outcome::Failed {
                error: "boom".into(),
                retry_at: Some(retry_at),
            },
        )
        .await
        .unwrap();
    assert!(!store.read_log(job.id, 0, 10).await.unwrap().terminal());
    backend.advance(2 * SECOND);
    let second = claim_only(store.as_ref(), job.id).await;
    store
        .append_log(second.claim, &lines(&["try 2"]), NO_CAP)
        .await
        .unwrap();
    store
        .finish(
            second.claim,
            Outcome::Failed {
                error: "boom".into(),
                retry_at: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get(job.id).await.unwrap().status, JobStatus::Failed);
    store.restart(job.id, None).await.unwrap();
    let third = claim_only(store.as_ref(), job.id).await;
    store
        .append_log(third.claim, &lines(&["after restart"]), NO_CAP)
        .await
        .unwrap();
    let page = store.read_log(job.id, 0, 10).await.unwrap();
    let seen: Vec<(u64, u32, String)> = page
        .lines
        .iter()
        .map(|l| (l.seq, l.attempt, l.text.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, 1, "try 1".to_string()),
            (2, 2, "try 2".to_string()),
            (3, 1, "after restart".to_string()),
        ]
    );
}

pub async fn cleanup_deletes_a_jobs_log_with_it(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let job = store.submit(new_job("u")).await.unwrap();
    let claimed = claim_only(store.as_ref(), job.id).await;
    store
        .append_log(claimed.claim, &lines(&["one", "two"]), NO_CAP)
        .await
        .unwrap();
    store
        .finish(claimed.claim, Outcome::Completed { result: json!(1) })
        .await
        .unwrap();
    let kept = store.submit(new_job("v")).await.unwrap();
    let kept_claim = claim_only(store.as_ref(), kept.id).await;
    store
        .append_log(kept_claim.claim, &lines(&["still running"]), NO_CAP)
        .await
        .unwrap();

    backend.advance(2 * HOUR);
    let report = store
        .cleanup(&CleanupParams {
            completed_retention: span(HOUR),
            failed_retention: span(HOUR),
            audit_retention: std::time::Duration::MAX,
        })
        .await
        .unwrap();
    assert_eq!(report.jobs_deleted, 1);
    assert!(matches!(
        store.read_log(job.id, 0, 10).await,
        Err(StoreError::NotFound(_))
    ));
    let page = store.read_log(kept.id, 0, 10).await.unwrap();
    assert_eq!(texts(&page), vec!["still running".to_string()]);
}
