//! `extraction`: assigns each chunk the taxonomy categories it really
//! supports, with a score, and extracts the sentences that support each
//! assignment. The rule and its thresholds (parameters `min_score` (0.15),
//! `min_share` (0.5), `min_hits` (2) and `max_evidence` (3)) are in
//! [`labels`](super::labels): a category needs two of its terms (matched by
//! stem), a score of its own, a score near the chunk's best, and a sentence
//! that mentions it. Subcategories are named `parent/child` and assigned
//! only within an assigned parent.
//!
//! Input: the taxonomy of a `taxonomy_processing` dependency (a result with
//! `categories`) or the parameter `taxonomy` (that result, or its list of
//! categories); the chunks of a `document_processing` dependency,
//! `chunks_artifacts` (artifacts of jobs this one depends on) or inline
//! `chunks`. Artifact `extractions.jsonl`, a line per chunk `{chunk_id, source,
//! text, categories: [{name, score, evidence}]}`; result `{artifact, chunks,
//! assignments, per_category}`.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::artifacts::ArtifactDir;
use super::chunks::load_chunks;
use super::dirs::Dirs;
use super::inputs::Inputs;
use super::stage::Stage;
use super::task::Task;
use super::taxonomy::Category;

pub use super::labels::{Assignment, Matcher, Options, label};

/// The artifact's file name.
pub const EXTRACTIONS_FILE: &str = "extractions.jsonl";

/// A chunk with its categories: a line of the `extractions.jsonl` artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labelled {
    /// The chunk's id.
    pub chunk_id: String,
    /// The chunk's document.
    pub source: String,
    /// The chunk's text.
    pub text: String,
    /// Its categories, in taxonomy order.
    pub categories: Vec<Assignment>,
}

/// The `extraction` job type: reads artifacts under `dirs` and writes its
/// own under `dirs.data_dir`.
pub fn handler(dirs: Dirs) -> Stage {
    Stage::new(dirs, process)
}

fn process(task: &Task, inputs: &Inputs, dirs: &Dirs) -> anyhow::Result<Value> {
    let options = Options::from_params(&inputs.params)?;
    let taxonomy = taxonomy_of(inputs)?;
    let categories = flatten(&taxonomy.categories);
    let chunks = load_chunks(task, inputs, dirs)?;
    let total = chunks.len() as u64;
    let artifacts = ArtifactDir::create(&dirs.artifacts, inputs.job_id)
        .context("cannot create the artifact directory")?;
    let mut out = artifacts.jsonl(EXTRACTIONS_FILE)?;
    let mut per_category: BTreeMap<String, u64> =
        categories.iter().map(|c| (c.name.clone(), 0)).collect();
    let mut assignments = 0u64;
    task.progress(0, total);
    for (i, chunk) in chunks.into_iter().enumerate() {
        task.check()?;
        let labels = label(&categories, &chunk.text, &options);
        for assignment in &labels {
            assignments += 1;
            *per_category.entry(assignment.name.clone()).or_default() += 1;
        }
        out.write(&Labelled {
            chunk_id: chunk.chunk_id,
            source: chunk.source,
            text: chunk.text,
            categories: labels,
        })?;
        task.progress(i as u64 + 1, total);
    }
    out.finish()?;
    let artifact = artifacts.reference(EXTRACTIONS_FILE);
    artifacts.commit(task)?;
    Ok(json!({
        "artifact": artifact,
        "chunks": total,
        "assignments": assignments,
        "per_category": per_category,
    }))
}

/// A taxonomy as extraction reads it.
#[derive(Debug, Deserialize)]
struct Taxonomy {
    categories: Vec<Category>,
}

/// The taxonomy of the parameter `taxonomy`, else of the first dependency
/// whose result has `categories`.
fn taxonomy_of(inputs: &Inputs) -> anyhow::Result<Taxonomy> {
    let value = match inputs.params.get("taxonomy").filter(|v| !v.is_null()) {
        Some(Value::Array(categories)) => json!({ "categories": categories }),
        Some(value) => value.clone(),
        None => inputs
            .dependency_results("categories")
            .first()
            .map(|result| (*result).clone())
            .context("no taxonomy given: depend on a taxonomy_processing job or pass taxonomy")?,
    };
    serde_json::from_value(value)
        .context("taxonomy must be {\"categories\": [{\"name\", \"terms\", \"children\"?}]}")
}

/// The categories and their subcategories, parents first, subcategories
/// named `parent/child`.
pub fn flatten(categories: &[Category]) -> Vec<Matcher> {
    let mut out = Vec::new();
    for category in categories {
        let parent = out.len();
        out.push(Matcher::new(category.name.clone(), &category.terms, None));
        for child in &category.children {
            let name = format!("{}/{}", category.name, child.name);
            out.push(Matcher::new(name, &child.terms, Some(parent)));
        }
    }
    out
}
