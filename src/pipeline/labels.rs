//! Which categories a chunk really supports, how strongly, and the
//! sentences that say so: the rule `extraction` labels chunks by, and
//! `taxonomy_processing` keeps only categories that at least two chunks
//! support under it.
//!
//! Terms match by stem (see `text/terms.rs`), so `job` in a category finds
//! `jobs` in a chunk; a two-word term matches the two words written next
//! to each other. A category's score in a chunk is the mean over its terms
//! of `1 - e^-count` (so a term counts fully from about three mentions and
//! one-off mentions weigh less), in 0..=1. A chunk supports a category when
//! all of these hold (the defaults of [`Options`]):
//! - at least `min_hits` (2) distinct terms of it occur (all of them, for a
//!   category with fewer terms);
//! - its score reaches `min_score` (0.15);
//! - its score is at least `min_share` (0.5) of the best score of a
//!   category at its level (top level, or the same parent's subcategories)
//!   in the chunk, so a chunk carries the categories it is mostly about,
//!   not every one it mentions in passing;
//! - one of its sentences holds a term of it: the evidence, up to
//!   `max_evidence` (3) sentences with the most distinct terms, in text
//!   order.
//!
//! Subcategories are scored the same way, named `parent/child`, and only
//! within a supported parent.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::params::{f64_param, usize_param};
use super::text::{sentences, words};

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

/// Thresholds of [`label`]; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Lowest score that assigns a category.
    pub min_score: f64,
    /// Lowest share of the best score at the category's level.
    pub min_share: f64,
    /// Fewest distinct category terms a chunk must contain.
    pub min_hits: usize,
    /// Most evidence sentences per assignment.
    pub max_evidence: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            min_score: 0.15,
            min_share: 0.5,
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
            min_share: f64_param(params, "min_share", d.min_share, 0.0..=1.0)?,
            min_hits: usize_param(params, "min_hits", d.min_hits, 1..=100)?,
            max_evidence: usize_param(params, "max_evidence", d.max_evidence, 0..=100)?,
        })
    }
}

/// A category ready for matching.
#[derive(Debug)]
pub struct Matcher {
    /// Its name in assignments.
    pub name: String,
    /// Its terms, each as stems (a phrase has several).
    terms: Vec<Vec<String>>,
    /// Index of its parent among the categories matched together.
    parent: Option<usize>,
}

impl Matcher {
    /// A category named `name` with `terms` (as written: words or
    /// phrases), under the category at index `parent` of the list it is
    /// matched in, if any. Terms without a content word are left out.
    pub fn new(name: String, terms: &[String], parent: Option<usize>) -> Matcher {
        let terms = terms
            .iter()
            .map(|t| words(t).into_iter().map(|w| w.stem).collect::<Vec<_>>())
            .filter(|t| !t.is_empty())
            .collect();
        Matcher {
            name,
            terms,
            parent,
        }
    }
}

/// The stems of a text, with their counts; an empty stem marks where the
/// text is not continuous (a stop word, punctuation), so a phrase never
/// matches across it.
struct Stems {
    list: Vec<String>,
    counts: HashMap<String, u32>,
}

impl Stems {
    fn of(text: &str) -> Stems {
        let mut list = Vec::new();
        let mut counts = HashMap::new();
        for word in words(text) {
            if !word.joined {
                list.push(String::new());
            }
            *counts.entry(word.stem.clone()).or_default() += 1;
            list.push(word.stem);
        }
        Stems { list, counts }
    }

    /// Occurrences of `term`, a stem sequence (a phrase has several).
    fn occurrences(&self, term: &[String]) -> u32 {
        match term {
            [single] => self.counts.get(single).copied().unwrap_or(0),
            _ => self.list.windows(term.len()).filter(|w| *w == term).count() as u32,
        }
    }
}

/// The categories `text` supports, with scores and evidence, in the order
/// of `categories`; see the module documentation.
pub fn label(categories: &[Matcher], text: &str, options: &Options) -> Vec<Assignment> {
    let stems = Stems::of(text);
    let sentences: Vec<(String, Stems)> = sentences(text)
        .into_iter()
        .map(|s| {
            let stems = Stems::of(&s);
            (s, stems)
        })
        .collect();
    // Scores of the categories that pass `min_hits` and `min_score`.
    let scores: Vec<Option<f64>> = categories
        .iter()
        .map(|category| {
            if category.terms.is_empty() {
                return None;
            }
            let mut hits = 0;
            let mut sum = 0.0;
            for term in &category.terms {
                let count = stems.occurrences(term);
                if count > 0 {
                    hits += 1;
                    sum += 1.0 - (-f64::from(count)).exp();
                }
            }
            let score = sum / category.terms.len() as f64;
            (hits >= options.min_hits.min(category.terms.len()) && score >= options.min_score)
                .then_some(score)
        })
        .collect();
    let mut assigned = vec![false; categories.len()];
    let mut out = Vec::new();
    for (i, category) in categories.iter().enumerate() {
        let Some(score) = scores[i] else { continue };
        if category.parent.is_some_and(|p| !assigned[p]) {
            continue;
        }
        let best_sibling = categories
            .iter()
            .zip(&scores)
            .filter(|(other, _)| other.parent == category.parent)
            .filter_map(|(_, s)| *s)
            .fold(0.0, f64::max);
        if score < options.min_share * best_sibling {
            continue;
        }
        let Some(evidence) = evidence(category, &sentences, options.max_evidence) else {
            continue;
        };
        assigned[i] = true;
        out.push(Assignment {
            name: category.name.clone(),
            score: (score * 10_000.0).round() / 10_000.0,
            evidence,
        });
    }
    out
}

/// The sentences with the most distinct terms of `category` (at least one),
/// at most `max`, in text order; `None` when no sentence holds a term.
fn evidence(category: &Matcher, sentences: &[(String, Stems)], max: usize) -> Option<Vec<String>> {
    let mut scored: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .filter_map(|(i, (_, stems))| {
            let hits = category
                .terms
                .iter()
                .filter(|term| stems.occurrences(term) > 0)
                .count();
            (hits > 0).then_some((hits, i))
        })
        .collect();
    if scored.is_empty() {
        return None;
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(max);
    scored.sort_by_key(|&(_, i)| i);
    Some(
        scored
            .into_iter()
            .map(|(_, i)| sentences[i].0.clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(name: &str, terms: &[&str], parent: Option<usize>) -> Matcher {
        let terms: Vec<String> = terms.iter().map(|t| (*t).to_owned()).collect();
        Matcher::new(name.into(), &terms, parent)
    }

    #[test]
    fn terms_match_by_stem_and_phrases_only_as_written() {
        let categories = [matcher("jobs", &["job", "worker queue"], None)];
        let options = Options::default();
        let found = label(
            &categories,
            "Two jobs wait. The worker queue holds jobs.",
            &options,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].evidence,
            vec!["Two jobs wait.", "The worker queue holds jobs."]
        );
        // "worker, queue" is no phrase: one term of two is too few.
        assert!(label(&categories, "Jobs: a worker, queue.", &options).is_empty());
    }

    #[test]
    fn a_chunk_carries_what_it_is_mostly_about() {
        let categories = [
            matcher("space", &["telescope", "planet", "orbit"], None),
            matcher("food", &["dough", "oven", "flour"], None),
        ];
        let text = "The telescope found a planet in orbit. The telescope tracked the \
                    planet's orbit. Her oven was next to the telescope, near flour.";
        let found = label(&categories, text, &Options::default());
        let names: Vec<&str> = found.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["space"]);
    }
}
