//! The document pipeline: four built-in job types that turn documents into a
//! labelled dataset, each feeding the next through its artifact.
//!
//! - [`documents`]: `document_processing`, files or inline text into chunks.
//! - [`taxonomy`]: `taxonomy_processing`, chunks into a small hierarchy of
//!   categories with key terms.
//! - [`extraction`]: `extraction`, chunks labelled with categories, scores and
//!   supporting sentences.
//! - [`dataset`]: `dataset_generation`, labelled chunks into train and
//!   validation files.
//!
//! Each handler runs its work on a blocking thread ([`task`]) that checks for
//! cancellation between items and reports progress, and writes its output
//! into an [`artifacts::ArtifactDir`], which appears under
//! `data_dir/artifacts/<job_id>` only when the job succeeds.

pub mod artifacts;
pub mod dataset;
pub mod documents;
pub mod extraction;
mod inputs;
mod params;
pub mod task;
pub mod taxonomy;
pub mod text;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Settings;
use crate::runtime::JobHandler;

pub use task::Stage;

/// The pipeline's job types, in the order the stages run.
pub const STAGES: [&str; 4] = [
    "document_processing",
    "taxonomy_processing",
    "extraction",
    "dataset_generation",
];

/// The pipeline's handlers by job type name, in [`STAGES`] order.
pub fn handlers(dirs: &Dirs) -> Vec<(&'static str, Arc<dyn JobHandler>)> {
    let [documents, taxonomy, extraction, dataset] = STAGES;
    vec![
        (documents, Arc::new(documents::handler(dirs.clone()))),
        (taxonomy, Arc::new(taxonomy::handler(dirs.clone()))),
        (extraction, Arc::new(extraction::handler(dirs.clone()))),
        (dataset, Arc::new(dataset::handler(dirs.clone()))),
    ]
}

/// The directories the pipeline handlers read from and write to, taken from
/// [`Settings`] so tests can point them anywhere.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Where `document_processing` may read files; nothing outside it is read.
    pub documents_root: PathBuf,
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
