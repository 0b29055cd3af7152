//! [`ArtifactDir`]: a step's artifacts while it writes them, in a local
//! staging directory, uploaded to the artifact store only when the step
//! succeeds.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use anyhow::Context;
use serde::Serialize;

use super::{ArtifactStore, reference};
use crate::model::JobId;
use crate::pipeline::task::Task;

/// A job's artifacts while the job writes them. Dropped without
/// [`ArtifactDir::commit`] (on an error, a cancel or a panic), it deletes
/// what was written and nothing reaches the artifact store.
pub(crate) struct ArtifactDir {
    staging: tempfile::TempDir,
    job_id: JobId,
    store: ArtifactStore,
}

impl ArtifactDir {
    /// An empty staging directory for `job_id`'s artifacts, in the store's
    /// scratch directory (created if missing).
    pub(crate) fn create(store: &ArtifactStore, job_id: JobId) -> io::Result<ArtifactDir> {
        Ok(ArtifactDir {
            staging: store.scratch_dir(&format!("out-{job_id}-"))?,
            job_id,
            store: store.clone(),
        })
    }

    /// Creates the file `name` in the staging directory, for writing.
    pub(crate) fn create_file(&self, name: &str) -> io::Result<File> {
        File::create(self.staging.path().join(name))
    }

    /// Creates the JSON Lines file `name` in the staging directory.
    pub(crate) fn jsonl(&self, name: &str) -> io::Result<JsonLines> {
        Ok(JsonLines {
            out: BufWriter::new(self.create_file(name)?),
        })
    }

    /// How the job's result names the artifact `name` once committed.
    pub(crate) fn reference(&self, name: &str) -> String {
        reference(self.job_id, name)
    }

    /// From the step's blocking thread: uploads every staged file as the
    /// job's artifact of that name, replacing those of an earlier attempt.
    /// A cancel that arrives during the upload, or a failed upload, removes
    /// what this attempt uploaded.
    pub(crate) fn commit(self, task: &Task) -> anyhow::Result<()> {
        task.check()?;
        let mut names: Vec<String> = std::fs::read_dir(self.staging.path())?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()?;
        names.sort();
        let store = &self.store;
        let uploaded = store.block_on(async {
            for name in &names {
                store
                    .upload(self.job_id, name, &self.staging.path().join(name))
                    .await?;
            }
            task.check()
        })?;
        if let Err(e) = uploaded {
            let _ = store.block_on(async {
                for name in &names {
                    let _ = store.remove(self.job_id, name).await;
                }
            });
            return Err(e).context("cannot store the artifacts");
        }
        Ok(())
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

    /// Flushes the file.
    pub(crate) fn finish(self) -> io::Result<()> {
        self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }
}
