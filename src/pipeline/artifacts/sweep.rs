//! Retention of artifacts: those of jobs the store no longer has are
//! deleted, and so are staging files an interrupted attempt left behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ArtifactStore;
use crate::model::JobId;
use crate::store::Store;

/// Staging files older than this belong to an attempt that cannot still be
/// running (its process died): they are removed.
const STALE_STAGING: Duration = Duration::from_secs(24 * 3600);

/// Every `interval` (the first at once), until `stop` fires, deletes the
/// artifacts of jobs the store no longer has, if written more than `grace`
/// ago: a submission stores its input artifact just before its job, so a
/// younger artifact may belong to a job being stored.
pub(crate) fn spawn_sweeper(
    store: Arc<dyn Store>,
    artifacts: ArtifactStore,
    interval: Duration,
    grace: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match sweep(store.as_ref(), &artifacts, grace).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(artifacts_removed = n, "removed artifacts of deleted jobs"),
                Err(e) => tracing::warn!(error = %e, "artifact cleanup failed"),
            }
            let scratch = artifacts.scratch.clone();
            let _ = tokio::task::spawn_blocking(move || remove_stale_staging(&scratch)).await;
        }
    })
}

/// Jobs asked about in one `Store::missing` call.
const MISSING_BATCH: usize = 1_000;

/// One pass of [`spawn_sweeper`]: returns how many artifacts it deleted.
/// One listing of the store, one existence check per [`MISSING_BATCH`]
/// jobs, one delete per artifact that goes.
async fn sweep(
    store: &dyn Store,
    artifacts: &ArtifactStore,
    grace: Duration,
) -> anyhow::Result<usize> {
    let cutoff = Utc::now() - grace;
    // The artifacts written before the cutoff, by job: younger ones wait
    // for a later pass.
    let mut old: BTreeMap<JobId, Vec<ObjectPath>> = BTreeMap::new();
    let mut listed = artifacts.objects.list(None);
    while let Some(meta) = listed.try_next().await? {
        let job_id = meta
            .location
            .parts()
            .next()
            .and_then(|part| JobId::parse_str(part.as_ref()).ok());
        if let Some(job_id) = job_id.filter(|_| meta.last_modified < cutoff) {
            old.entry(job_id).or_default().push(meta.location);
        }
    }
    let jobs: Vec<JobId> = old.keys().copied().collect();
    let mut removed = 0;
    for batch in jobs.chunks(MISSING_BATCH) {
        // Only jobs confirmed gone: a store error keeps their artifacts.
        for job_id in store.missing(batch).await? {
            for location in old.get(&job_id).into_iter().flatten() {
                artifacts.delete(location).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Removes the entries of the scratch directory not modified for
/// [`STALE_STAGING`]; a missing directory is no error.
fn remove_stale_staging(scratch: &Path) {
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| {
                now.duration_since(modified)
                    .is_ok_and(|age| age > STALE_STAGING)
            });
        if stale {
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::events::EventBus;
    use crate::model::{Clock, NewJob};
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn only_the_artifacts_of_gone_jobs_written_before_the_grace_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &dir.path().join("data"),
            Synchronous::Normal,
            EventBus::new(),
            Clock::system(),
            None,
        )
        .await
        .unwrap();
        let kept = store.submit(NewJob::new("noop", "u")).await.unwrap().id;
        let gone = uuid::Uuid::now_v7();
        let artifacts =
            ArtifactStore::in_directory(&dir.path().join("artifacts"), dir.path().join("scratch"))
                .unwrap();
        for job in [kept, gone] {
            artifacts
                .put(job, "input.json", b"{}".to_vec())
                .await
                .unwrap();
        }
        // Younger than the grace: it may be the input of a job being
        // submitted, so nothing goes.
        let hour = Duration::from_secs(3600);
        assert_eq!(sweep(store.as_ref(), &artifacts, hour).await.unwrap(), 0);
        // Past it: the gone job's artifact, not the stored job's.
        assert_eq!(
            sweep(store.as_ref(), &artifacts, Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert!(artifacts.list(gone).await.unwrap().is_empty());
        assert_eq!(artifacts.list(kept).await.unwrap().len(), 1);
        assert!(
            !dir.path().join("artifacts").join(gone.to_string()).exists(),
            "its directory goes too"
        );
    }
}
