//! [`Dirs`], where the pipeline reads and writes; its own file so that the
//! steps can use it without importing the module that lists them.

use std::path::PathBuf;

use super::artifacts::ArtifactStore;
use crate::config::Settings;

/// Where the pipeline handlers read documents from and keep artifacts,
/// taken from [`Settings`] so tests can point them anywhere.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Where `document_processing` may read files; nothing outside it is
    /// read, and nothing at all when `None` (only inline text then).
    pub documents_root: Option<PathBuf>,
    /// The data directory, which no document may lie in.
    pub data_dir: PathBuf,
    /// Where artifacts are kept.
    pub artifacts: ArtifactStore,
}

impl Dirs {
    /// The directories and artifact store of these settings.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Dirs> {
        Ok(Dirs {
            documents_root: settings.documents_root.clone(),
            data_dir: settings.data_dir.clone(),
            artifacts: ArtifactStore::open(settings)?,
        })
    }

    /// Documents under `documents_root`, artifacts in
    /// `data_dir/artifacts`: one machine's pipeline, as tests run it.
    pub fn local(documents_root: Option<PathBuf>, data_dir: PathBuf) -> anyhow::Result<Dirs> {
        let artifacts =
            ArtifactStore::in_directory(&data_dir.join("artifacts"), data_dir.join("scratch"))?;
        Ok(Dirs {
            documents_root,
            data_dir,
            artifacts,
        })
    }
}
