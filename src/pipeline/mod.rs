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
//! Each handler is a [`Stage`]: its work runs on a blocking thread ([`task`])
//! that checks for cancellation between items and reports progress, reads
//! the chunks it is given ([`chunks`]), and writes its output into an
//! [`artifacts::ArtifactDir`], which appears under
//! `data_dir/artifacts/<job_id>` only when the job succeeds.

pub mod artifacts;
pub(crate) mod chunks;
pub mod dataset;
mod dirs;
pub mod documents;
pub mod extraction;
mod inputs;
mod labels;
mod params;
mod stage;
pub(crate) mod task;
pub mod taxonomy;
pub(crate) mod text;

use std::sync::Arc;

use crate::runtime::JobHandler;

pub use dirs::Dirs;

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
