//! `extraction`: assigns each chunk the taxonomy categories it is about,
//! with a score, and extracts the sentences that support each assignment.
//!
//! A category's score in a chunk is the mean over its terms of
//! `1 - e^-count` (so a term counts fully from about three mentions and
//! one-off mentions weigh less), in 0..=1. A chunk gets a category when the
//! score reaches `min_score` (0.1) and at least `min_hits` (2) of its terms
//! occur (all of them, for a category with fewer terms). Subcategories are
//! scored the same way, named `parent/child`, and only within an assigned
//! parent. The evidence is up to `max_evidence` (3) sentences of the chunk
//! holding the most of the category's terms, in text order.
//!
//! Input: the taxonomy of a `taxonomy_processing` dependency (a result with
//! `categories`) or the parameter `taxonomy` (that result, or its list of
//! categories); the chunks of a `document_processing` dependency,
//! `chunks_artifacts` (artifacts of jobs this one depends on) or inline
//! `chunks`. Artifact `extractions.jsonl`, a line per chunk `{chunk_id, source,
//! text, categories: [{name, score, evidence}]}`; result `{artifact, chunks,
//! assignments, per_category}`.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::artifacts::ArtifactDir;
use super::chunks::load_chunks;
use super::dirs::Dirs;
use super::inputs::Inputs;
use super::params::{f64_param, usize_param};
use super::stage::Stage;
use super::task::Task;
use super::taxonomy::Category;
use super::text::{sentences, tokens};

/// The artifact's file name.
pub const EXTRACTIONS_FILE: &str = "extractions.jsonl";

/// A category assigned to a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The category (`parent/child` for a subcategory).
    pub name: String,
    /// How strongly the chunk is about it, 0 to 1.
    pub score: f64,
    /// The chunk's sentences that mention the category's terms most.
    #[serde(default)]
    pub evidence: Vec<String>,
}

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

/// Thresholds of [`label`].
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Lowest score that assigns a category.
    pub min_score: f64,
    /// Fewest distinct category terms a chunk must contain.
    pub min_hits: usize,
    /// Most evidence sentences per assignment.
    pub max_evidence: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            min_score: 0.1,
            min_hits: 2,
            max_evidence: 3,
        }
    }
}

impl Options {
    /// The options a job's parameters give, defaults for the rest.
    pub fn from_params(params: &Value) -> anyhow::Result<Options> {
        let d = Options::default();
        Ok(Options {
            min_score: f64_param(params, "min_score", d.min_score, 0.0..=1.0)?,
            min_hits: usize_param(params, "min_hits", d.min_hits, 1..=100)?,
            max_evidence: usize_param(params, "max_evidence", d.max_evidence, 0..=100)?,
        })
    }
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

/// A category ready for matching.
#[derive(Debug)]
pub struct Matcher {
    /// Its name in assignments.
    pub name: String,
    /// Its terms, each as content-word tokens (a phrase has several).
    terms: Vec<Vec<String>>,
    /// Index of its parent among the flattened categories.
    parent: Option<usize>,
}

/// The categories and their subcategories, parents first, subcategories
/// named `parent/child`.
pub fn flatten(categories: &[Category]) -> Vec<Matcher> {
    let mut out = Vec::new();
    for category in categories {
        let parent = out.len();
        out.push(matcher(category.name.clone(), &category.terms, None));
        for child in &category.children {
            let name = format!("{}/{}", category.name, child.name);
            out.push(matcher(name, &child.terms, Some(parent)));
        }
    }
    out
}

fn matcher(name: String, terms: &[String], parent: Option<usize>) -> Matcher {
    let terms = terms
        .iter()
        .map(|t| tokens(t))
        .filter(|t| !t.is_empty())
        .collect();
    Matcher {
        name,
        terms,
        parent,
    }
}

/// The content words of a text, with their counts.
struct Words {
    list: Vec<String>,
    counts: HashMap<String, u32>,
}

impl Words {
    fn of(text: &str) -> Words {
        let list = tokens(text);
        let mut counts = HashMap::new();
        for word in &list {
            *counts.entry(word.clone()).or_default() += 1;
        }
        Words { list, counts }
    }

    /// Occurrences of `term`, a token sequence (a phrase has several).
    fn occurrences(&self, term: &[String]) -> u32 {
        match term {
            [single] => self.counts.get(single).copied().unwrap_or(0),
            _ => self.list.windows(term.len()).filter(|w| *w == term).count() as u32,
        }
    }
}

/// The categories `text` is about, with scores and evidence; see the module
/// documentation.
pub fn label(categories: &[Matcher], text: &str, options: &Options) -> Vec<Assignment> {
    let words = Words::of(text);
    let sentences: Vec<(String, Words)> = sentences(text)
        .into_iter()
        .map(|s| {
            let words = Words::of(&s);
            (s, words)
        })
        .collect();
    let mut assigned = vec![false; categories.len()];
    let mut out = Vec::new();
    for (i, category) in categories.iter().enumerate() {
        if category.terms.is_empty() || category.parent.is_some_and(|p| !assigned[p]) {
            continue;
        }
        let mut hits = 0;
        let mut sum = 0.0;
        for term in &category.terms {
            let count = words.occurrences(term);
            if count > 0 {
                hits += 1;
                sum += 1.0 - (-f64::from(count)).exp();
            }
        }
        let score = sum / category.terms.len() as f64;
        if hits < options.min_hits.min(category.terms.len()) || score < options.min_score {
            continue;
        }
        assigned[i] = true;
        out.push(Assignment {
            name: category.name.clone(),
            score: (score * 10_000.0).round() / 10_000.0,
            evidence: evidence(category, &sentences, options.max_evidence),
        });
    }
    out
}

/// The sentences with the most distinct terms of `category` (at least one),
/// at most `max`, in text order.
fn evidence(category: &Matcher, sentences: &[(String, Words)], max: usize) -> Vec<String> {
    let mut scored: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .filter_map(|(i, (_, words))| {
            let hits = category
                .terms
                .iter()
                .filter(|term| words.occurrences(term) > 0)
                .count();
            (hits > 0).then_some((hits, i))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(max);
    scored.sort_by_key(|&(_, i)| i);
    scored
        .into_iter()
        .map(|(_, i)| sentences[i].0.clone())
        .collect()
}
