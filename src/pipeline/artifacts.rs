//! Job artifacts: the files a pipeline job leaves for the jobs after it,
//! under `data_dir/artifacts/<job_id>/`.
//!
//! A job writes into a hidden temporary directory beside that path and
//! renames it into place only when it succeeds, so a cancelled, failed or
//! crashed job never leaves a partial artifact where a reader could find it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::model::JobId;
use crate::store::{Store, StoreError};

/// Prefix of the temporary directories of jobs still writing.
const TEMP_PREFIX: &str = ".tmp-";

/// Where artifacts live for this data directory.
pub(crate) fn artifacts_root(data_dir: &Path) -> PathBuf {
    data_dir.join("artifacts")
}

/// A job's artifact directory while the job writes it. Dropped without
/// [`ArtifactDir::commit`] (on an error, a cancel or a panic), it deletes
/// what was written.
#[derive(Debug)]
pub(crate) struct ArtifactDir {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl ArtifactDir {
    /// Creates an empty temporary directory for `job_id`'s artifacts under
    /// `root` (which is created if missing).
    pub(crate) fn create(root: &Path, job_id: JobId) -> io::Result<ArtifactDir> {
        fs::create_dir_all(root)?;
        let root = std::path::absolute(root)?;
        let nonce = uuid::Uuid::new_v4().simple();
        let temp = root.join(format!("{TEMP_PREFIX}{job_id}-{nonce}"));
        fs::create_dir(&temp)?;
        Ok(ArtifactDir {
            temp,
            target: root.join(job_id.to_string()),
            committed: false,
        })
    }

    /// Creates the file `name` in the temporary directory, for writing.
    pub(crate) fn create_file(&self, name: &str) -> io::Result<File> {
        File::create(self.temp.join(name))
    }

    /// Creates the JSON Lines file `name` in the temporary directory.
    pub(crate) fn jsonl(&self, name: &str) -> io::Result<JsonLines> {
        Ok(JsonLines {
            out: BufWriter::new(self.create_file(name)?),
        })
    }

    /// Where the file `name` will be once the directory is committed; the
    /// path to put in the job's result.
    pub(crate) fn final_path(&self, name: &str) -> PathBuf {
        self.target.join(name)
    }

    /// Moves the directory into place as the job's artifacts, replacing
    /// those of an earlier attempt, and returns its path.
    pub(crate) fn commit(mut self) -> io::Result<PathBuf> {
        match fs::remove_dir_all(&self.target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        if let Some(parent) = self.target.parent() {
            // Make the rename durable; failure here loses nothing written.
            let _ = File::open(parent).and_then(|dir| dir.sync_all());
        }
        Ok(self.target.clone())
    }
}

impl Drop for ArtifactDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.temp);
        }
    }
}

/// A JSON Lines file being written: one JSON value per line.
pub(crate) struct JsonLines {
    out: BufWriter<File>,
}

impl JsonLines {
    /// Appends `record` as one line.
    pub(crate) fn write<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    /// Flushes and syncs the file to disk.
    pub(crate) fn finish(self) -> io::Result<()> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// Deletes the artifact directories under `root` (and temporary directories
/// of interrupted attempts) whose job `keep` says is gone, so artifacts go
/// with their jobs at retention cleanup. Entries that are not named after a
/// job id are left alone. Returns how many were deleted; a missing `root`
/// is no error.
pub(crate) fn remove_orphaned_artifacts(
    root: &Path,
    keep: impl Fn(JobId) -> bool,
) -> io::Result<usize> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(job_id) = name.to_str().and_then(job_of_entry) else {
            continue;
        };
        if keep(job_id) {
            continue;
        }
        let path = entry.path();
        let outcome = if entry.file_type()?.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match outcome {
            Ok(()) => removed += 1,
            // Removed meanwhile by someone else: the goal is reached.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Every `interval` (the first at once), deletes the artifacts of jobs the
/// store no longer has, until `stop` fires. Artifacts of jobs the store
/// cannot confirm as gone are kept; the file system work runs on a blocking
/// thread.
pub(crate) fn spawn_sweeper(
    store: Arc<dyn Store>,
    root: PathBuf,
    interval: Duration,
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
            match sweep(store.as_ref(), root.clone()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(artifacts_removed = n, "removed artifacts of deleted jobs"),
                Err(e) => tracing::warn!(error = %e, "artifact cleanup failed"),
            }
        }
    })
}

/// One sweep of [`spawn_sweeper`]: returns how many entries it deleted.
async fn sweep(store: &dyn Store, root: PathBuf) -> io::Result<usize> {
    let listed = root.clone();
    let candidates = tokio::task::spawn_blocking(move || job_entries(&listed))
        .await
        .map_err(io::Error::other)??;
    // Only entries listed here and confirmed gone: a directory an attempt
    // creates meanwhile belongs to a job the store has.
    let mut gone = HashSet::new();
    for id in candidates {
        if matches!(store.get(id).await, Err(StoreError::NotFound(_))) {
            gone.insert(id);
        }
    }
    tokio::task::spawn_blocking(move || remove_orphaned_artifacts(&root, |id| !gone.contains(&id)))
        .await
        .map_err(io::Error::other)?
}

/// The jobs that have entries under `root`; none when it does not exist.
fn job_entries(root: &Path) -> io::Result<Vec<JobId>> {
    match fs::read_dir(root) {
        Ok(entries) => Ok(entries
            .flatten()
            .filter_map(|entry| job_of_entry(entry.file_name().to_str()?))
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The job an entry of the artifacts root belongs to: `<job_id>` or
/// `.tmp-<job_id>-<nonce>`.
fn job_of_entry(name: &str) -> Option<JobId> {
    let id = match name.strip_prefix(TEMP_PREFIX) {
        Some(rest) => rest.get(..36)?,
        None => name,
    };
    JobId::parse_str(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_directory_vanishes_and_a_committed_one_replaces_the_old() {
        let root = tempfile::tempdir().unwrap();
        let job = uuid::Uuid::now_v7();
        {
            let dir = ArtifactDir::create(root.path(), job).unwrap();
            fs::write(dir.temp.join("x"), "partial").unwrap();
        }
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);

        for content in ["first", "second"] {
            let dir = ArtifactDir::create(root.path(), job).unwrap();
            let mut out = dir.jsonl("x.jsonl").unwrap();
            out.write(&content).unwrap();
            out.finish().unwrap();
            let path = dir.commit().unwrap();
            assert_eq!(path.file_name().unwrap(), job.to_string().as_str());
        }
        let text = fs::read_to_string(root.path().join(job.to_string()).join("x.jsonl")).unwrap();
        assert_eq!(text, "\"second\"\n");
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn orphans_are_removed_and_strangers_kept() {
        let root = tempfile::tempdir().unwrap();
        let (live, gone, gone_temp) = (
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
        );
        fs::create_dir(root.path().join(live.to_string())).unwrap();
        fs::create_dir(root.path().join(gone.to_string())).unwrap();
        fs::create_dir(root.path().join(format!(".tmp-{gone_temp}-abc"))).unwrap();
        fs::create_dir(root.path().join("not-a-job")).unwrap();
        let removed = remove_orphaned_artifacts(root.path(), |id| id == live).unwrap();
        assert_eq!(removed, 2);
        let mut left: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec![live.to_string(), "not-a-job".to_string()]);
        assert_eq!(
            remove_orphaned_artifacts(&root.path().join("missing"), |_| false).unwrap(),
            0
        );
    }
}
