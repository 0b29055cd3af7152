//! [`Dirs`], where the pipeline reads and writes; its own file so that the
//! steps can use it without importing the module that lists them.

use std::path::PathBuf;

use super::artifacts;
use crate::config::Settings;

/// The directories the pipeline handlers read from and write to, taken from
/// [`Settings`] so tests can point them anywhere.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Where `document_processing` may read files; nothing outside it is
    /// read, and nothing at all when `None` (only inline text then).
    pub documents_root: Option<PathBuf>,
    /// The data directory; artifacts go to its `artifacts/` subdirectory.
    pub data_dir: PathBuf,
}

impl Dirs {
    /// The directories of these settings.
    pub fn from_settings(settings: &Settings) -> Dirs {
        Dirs {
            documents_root: settings.documents_root.clone(),
            data_dir: settings.data_dir.clone(),
        }
    }

    /// Where artifacts live: `data_dir/artifacts`, one directory per job.
    pub fn artifacts_root(&self) -> PathBuf {
        artifacts::artifacts_root(&self.data_dir)
    }
}
