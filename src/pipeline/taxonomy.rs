//! `taxonomy_processing`: derives a small hierarchy of categories, each with
//! its key terms, from term statistics over chunks.
//!
//! How: every chunk's terms are counted (`text/terms.rs`: stemmed words
//! without stop words, links, numbers or code, shown as most often
//! written, so `job` and `jobs` are one term). Two-word phrases are terms
//! too when they are collocations: used at least three times, in two chunks
//! or more, and for at least a quarter of the uses of their rarer word
//! (a plain count, chosen over YAKE, which scores a whole document rather
//! than chunks and would add six crates). Terms used at least twice, in at
//! least two chunks (and, with four chunks or more, in at most 90% of them)
//! are scored by their summed TF-IDF over the chunks, and the best
//! `max_terms` become candidates. Each candidate is a vector of its TF-IDF
//! weights per chunk; terms whose vectors point the same way (cosine)
//! co-occur. Average-linkage agglomerative clustering then merges the most
//! similar groups of terms: the groups formed while similarity is still
//! above `child_similarity` are subcategories, those formed down to
//! `min_similarity` are categories. Finally every category keeps only the
//! terms used mostly in the chunks that support it, and only categories
//! that at least two chunks support under extraction's default rule
//! (`labels.rs`) are kept. Every step iterates in a fixed order and breaks
//! ties by term, so the same chunks always give the same taxonomy.
//!
//! Input: the chunk artifacts of `document_processing` dependencies, the
//! files of `chunks_artifacts`, or inline `chunks`. Parameters:
//! `max_categories` (8), `terms_per_category` (8), `max_terms` (60),
//! `min_similarity` (0.15), `child_similarity` (0.35). Result (also the
//! artifact `taxonomy.json`): `{categories: [{name, terms, children?}],
//! chunks, artifact, chunk_artifacts}`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::artifacts::ArtifactDir;
use super::chunks::{Chunk, load_chunks};
use super::dirs::Dirs;
use super::inputs::Inputs;
use super::labels::{self, Matcher};
use super::params::{f64_param, usize_param};
use super::stage::Stage;
use super::task::Task;
use super::text::{Surfaces, words};

/// The artifact's file name.
pub const TAXONOMY_FILE: &str = "taxonomy.json";

/// A category of the taxonomy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// Its name: its most characteristic term.
    pub name: String,
    /// Its key terms, most characteristic first.
    pub terms: Vec<String>,
    /// Its subcategories, when it splits into several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Category>,
}

/// Tuning of [`derive`].
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Most top-level categories kept (the highest-scoring).
    pub max_categories: usize,
    /// Most terms listed per category.
    pub terms_per_category: usize,
    /// Candidate terms considered for grouping.
    pub max_terms: usize,
    /// Average similarity down to which groups merge into categories.
    pub min_similarity: f64,
    /// Average similarity down to which groups merge into subcategories.
    pub child_similarity: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_categories: 8,
            terms_per_category: 8,
            max_terms: 60,
            min_similarity: 0.15,
            child_similarity: 0.35,
        }
    }
}

impl Options {
    /// The options a job's parameters give, defaults for the rest.
    pub fn from_params(params: &Value) -> anyhow::Result<Options> {
        let d = Options::default();
        let options = Options {
            max_categories: usize_param(params, "max_categories", d.max_categories, 1..=100)?,
            terms_per_category: usize_param(
                params,
                "terms_per_category",
                d.terms_per_category,
                1..=100,
            )?,
            max_terms: usize_param(params, "max_terms", d.max_terms, 2..=500)?,
            min_similarity: f64_param(params, "min_similarity", d.min_similarity, 0.0..=1.0)?,
            child_similarity: f64_param(params, "child_similarity", d.child_similarity, 0.0..=1.0)?,
        };
        if options.child_similarity < options.min_similarity {
            anyhow::bail!("child_similarity must be at least min_similarity");
        }
        Ok(options)
    }
}

/// The `taxonomy_processing` job type: reads chunk artifacts under `dirs`
/// and writes its own under `dirs.data_dir`.
pub fn handler(dirs: Dirs) -> Stage {
    Stage::new(dirs, process)
}

fn process(task: &Task, inputs: &Inputs, dirs: &Dirs) -> anyhow::Result<Value> {
    let options = Options::from_params(&inputs.params)?;
    let chunks = load_chunks(task, inputs, dirs)?;
    let categories = derive(task, &chunks, &options)?;
    let chunk_artifacts: Vec<&Value> = inputs
        .dependency_results("documents")
        .into_iter()
        .filter_map(|result| result.get("artifact"))
        .collect();
    let mut taxonomy = json!({
        "categories": categories,
        "chunks": chunks.len(),
        "chunk_artifacts": chunk_artifacts,
    });
    let artifacts = ArtifactDir::create(&dirs.artifacts, inputs.job_id)
        .context("cannot create the artifact directory")?;
    let mut file = artifacts.create_file(TAXONOMY_FILE)?;
    serde_json::to_writer_pretty(&mut file, &taxonomy)?;
    file.sync_all()?;
    taxonomy["artifact"] = json!(artifacts.reference(TAXONOMY_FILE));
    artifacts.commit(task)?;
    Ok(taxonomy)
}

/// A candidate term: how it is shown, its score, and its TF-IDF weight per
/// chunk.
struct Term {
    text: String,
    score: f64,
    /// `(chunk index, weight)`, by chunk index.
    weights: Vec<(usize, f64)>,
    norm: f64,
    /// `(chunk index, uses)`, by chunk index.
    uses: Vec<(usize, u32)>,
}

/// Fewest uses of a two-word phrase, in all chunks, for it to be a term.
const MIN_PHRASE_COUNT: u32 = 3;

/// Fewest uses of a phrase as a share of the uses of its rarer word: a
/// phrase that is mostly how that word is used is a collocation, one that
/// is a rare pairing is not.
const MIN_PHRASE_SHARE: f64 = 0.25;

/// Term counts of one chunk, keyed by stem (a phrase by its two stems,
/// space-separated), and how many words it has.
struct ChunkTerms {
    counts: BTreeMap<String, u32>,
    words: usize,
}

/// Derives the taxonomy of `chunks`; see the module documentation.
/// Reports progress per chunk analysed and checks for cancellation between
/// chunks and between merges.
pub fn derive(task: &Task, chunks: &[Chunk], options: &Options) -> anyhow::Result<Vec<Category>> {
    let total = chunks.len() as u64;
    // Word and phrase counts per chunk, and how each stem is written.
    let mut surfaces = Surfaces::default();
    let mut per_chunk: Vec<(ChunkTerms, BTreeMap<String, u32>)> = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        task.check()?;
        let found = words(&chunk.text);
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        let mut phrases: BTreeMap<String, u32> = BTreeMap::new();
        for word in &found {
            *counts.entry(word.stem.clone()).or_default() += 1;
            surfaces.add(&word.stem, &word.surface);
        }
        for pair in found.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.joined && a.stem != b.stem {
                let key = format!("{} {}", a.stem, b.stem);
                surfaces.add(&key, &format!("{} {}", a.surface, b.surface));
                *phrases.entry(key).or_default() += 1;
            }
        }
        let words = found.len();
        per_chunk.push((ChunkTerms { counts, words }, phrases));
        task.progress(i as u64 + 1, total);
    }
    let mut word_total: BTreeMap<&str, u32> = BTreeMap::new();
    let mut phrase_total: BTreeMap<&str, (u32, usize)> = BTreeMap::new();
    for (terms, phrases) in &per_chunk {
        for (stem, &count) in &terms.counts {
            *word_total.entry(stem).or_default() += count;
        }
        for (key, &count) in phrases {
            let entry = phrase_total.entry(key).or_default();
            entry.0 += count;
            entry.1 += 1;
        }
    }
    // Phrases used often, in two chunks or more, and for a good share of
    // their rarer word's uses, count as terms too.
    let collocation = |key: &str, count: u32, chunks_with: usize| {
        let rarer = key
            .split(' ')
            .map(|stem| word_total.get(stem).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        count >= MIN_PHRASE_COUNT
            && chunks_with >= 2
            && f64::from(count) >= MIN_PHRASE_SHARE * f64::from(rarer)
    };
    let phrases: BTreeSet<String> = phrase_total
        .iter()
        .filter(|(key, (count, chunks_with))| collocation(key, *count, *chunks_with))
        .map(|(key, _)| (*key).to_owned())
        .collect();
    let counts: Vec<ChunkTerms> = per_chunk
        .into_iter()
        .map(|(mut terms, chunk_phrases)| {
            for (key, count) in chunk_phrases {
                if phrases.contains(&key) {
                    terms.counts.insert(key, count);
                }
            }
            terms
        })
        .collect();

    let mut document_frequency: BTreeMap<&str, usize> = BTreeMap::new();
    let mut collection_frequency: BTreeMap<&str, u32> = BTreeMap::new();
    for terms in &counts {
        for (term, &count) in &terms.counts {
            *document_frequency.entry(term).or_default() += 1;
            *collection_frequency.entry(term).or_default() += count;
        }
    }
    let n = chunks.len();
    // A term must recur, in two chunks (or all, with fewer), to say
    // something about a topic that two chunks can support; one in almost
    // every chunk (with enough chunks to tell) says nothing that tells
    // chunks apart.
    let max_df = if n >= 4 { (n * 9).div_ceil(10) } else { n };
    let min_df = n.min(2);
    let eligible = |term: &str, df: usize| {
        (min_df..=max_df).contains(&df) && collection_frequency.get(term).is_some_and(|&cf| cf >= 2)
    };
    let idf = |df: usize| ((1 + n) as f64 / (1 + df) as f64).ln() + 1.0;

    // Score every eligible term by its summed TF-IDF, in chunk order.
    let mut scores: BTreeMap<&str, f64> = BTreeMap::new();
    for terms in &counts {
        task.check()?;
        for (term, &count) in &terms.counts {
            let df = document_frequency.get(term.as_str()).copied().unwrap_or(0);
            if eligible(term, df) {
                *scores.entry(term.as_str()).or_default() +=
                    f64::from(count) / terms.words.max(1) as f64 * idf(df);
            }
        }
    }
    let mut ranked: Vec<(&str, f64)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(options.max_terms);
    let index: BTreeMap<&str, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (*t, i))
        .collect();
    let mut terms: Vec<Term> = ranked
        .iter()
        .map(|(key, score)| Term {
            text: surfaces.best(key),
            score: *score,
            weights: Vec::new(),
            norm: 0.0,
            uses: Vec::new(),
        })
        .collect();
    for (chunk, chunk_terms) in counts.iter().enumerate() {
        task.check()?;
        for (term, &count) in &chunk_terms.counts {
            if let Some(&i) = index.get(term.as_str()) {
                let df = document_frequency.get(term.as_str()).copied().unwrap_or(0);
                let weight = f64::from(count) / chunk_terms.words.max(1) as f64 * idf(df);
                terms[i].weights.push((chunk, weight));
                terms[i].uses.push((chunk, count));
            }
        }
    }
    for term in &mut terms {
        term.norm = term.weights.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
    }
    let clusters = cluster(task, &terms, options)?;
    let candidates = candidates(&terms, clusters);
    supported(task, chunks, &terms, candidates, options)
}

/// Cosine similarity of two terms' chunk vectors.
fn cosine(a: &Term, b: &Term) -> f64 {
    if a.norm == 0.0 || b.norm == 0.0 {
        return 0.0;
    }
    let (mut i, mut j, mut dot) = (0, 0, 0.0);
    while i < a.weights.len() && j < b.weights.len() {
        let (ca, wa) = a.weights[i];
        let (cb, wb) = b.weights[j];
        match ca.cmp(&cb) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                dot += wa * wb;
                i += 1;
                j += 1;
            }
        }
    }
    dot / (a.norm * b.norm)
}

/// Term groups: `(categories, subcategories)`, each a list of sets of term
/// indices; every subcategory lies within one category.
type Clusters = (Vec<Vec<usize>>, Vec<Vec<usize>>);

/// Average-linkage (UPGMA) clustering of the terms by cosine similarity.
fn cluster(task: &Task, terms: &[Term], options: &Options) -> anyhow::Result<Clusters> {
    let k = terms.len();
    let mut similarity = vec![vec![0.0f64; k]; k];
    for i in 0..k {
        task.check()?;
        for j in i + 1..k {
            let s = cosine(&terms[i], &terms[j]);
            similarity[i][j] = s;
            similarity[j][i] = s;
        }
    }
    let mut members: Vec<Option<Vec<usize>>> = (0..k).map(|i| Some(vec![i])).collect();
    let mut children: Option<Vec<Vec<usize>>> = None;
    loop {
        task.check()?;
        // The most similar pair of live groups; ties go to the lowest indices.
        let mut best: Option<(f64, usize, usize)> = None;
        for a in 0..k {
            if members[a].is_none() {
                continue;
            }
            for b in a + 1..k {
                if members[b].is_some() && best.is_none_or(|(s, _, _)| similarity[a][b] > s) {
                    best = Some((similarity[a][b], a, b));
                }
            }
        }
        let Some((s, a, b)) = best.filter(|(s, _, _)| *s >= options.min_similarity) else {
            break;
        };
        if s < options.child_similarity && children.is_none() {
            children = Some(members.iter().flatten().cloned().collect());
        }
        let Some(absorbed) = members[b].take() else {
            break;
        };
        let (size_a, size_b) = (
            members[a].as_ref().map_or(0, Vec::len) as f64,
            absorbed.len() as f64,
        );
        for x in 0..k {
            if x != a && members[x].is_some() {
                let merged =
                    (size_a * similarity[a][x] + size_b * similarity[b][x]) / (size_a + size_b);
                similarity[a][x] = merged;
                similarity[x][a] = merged;
            }
        }
        if let Some(group) = members[a].as_mut() {
            group.extend(absorbed);
        }
    }
    let parents: Vec<Vec<usize>> = members.into_iter().flatten().collect();
    let children = children.unwrap_or_else(|| parents.clone());
    Ok((parents, children))
}

/// A candidate category: its terms (indices into the ranked terms, best
/// first) and those of its subcategories.
struct Candidate {
    terms: Vec<usize>,
    children: Vec<Vec<usize>>,
}

/// Candidate categories from term groups: groups of two or more terms (or,
/// if there are none, single terms), best-scoring first, each with its
/// subcategories when it has at least two of two or more terms.
fn candidates(terms: &[Term], (parents, children): Clusters) -> Vec<Candidate> {
    let by_rank = |group: &[usize]| {
        let mut sorted = group.to_vec();
        // Terms are indexed by rank (score, then text), so the index orders them.
        sorted.sort_unstable();
        sorted
    };
    let score = |group: &[usize]| group.iter().map(|&i| terms[i].score).sum::<f64>();
    let mut groups: Vec<Vec<usize>> = parents
        .iter()
        .filter(|g| g.len() >= 2)
        .map(|g| by_rank(g))
        .collect();
    if groups.is_empty() {
        groups = parents.iter().map(|g| by_rank(g)).collect();
    }
    groups.sort_by(|a, b| {
        score(b)
            .total_cmp(&score(a))
            .then_with(|| terms[a[0]].text.cmp(&terms[b[0]].text))
    });
    groups
        .into_iter()
        .map(|group| {
            let inside: BTreeSet<usize> = group.iter().copied().collect();
            let mut subgroups: Vec<Vec<usize>> = children
                .iter()
                .filter(|c| c.len() >= 2 && inside.contains(&c[0]))
                .map(|c| by_rank(c))
                .collect();
            subgroups.sort_by(|a, b| score(b).total_cmp(&score(a)).then_with(|| a[0].cmp(&b[0])));
            if subgroups.len() < 2 {
                subgroups.clear();
            }
            Candidate {
                terms: group,
                children: subgroups,
            }
        })
        .collect()
}

/// The categories of `candidates`: each named after its best term, with at
/// most `terms_per_category` terms; a subcategory is named after its best
/// term other than its parent's name.
fn named(terms: &[Term], candidates: &[Candidate], options: &Options) -> Vec<Category> {
    let texts = |group: &[usize]| -> Vec<String> {
        group
            .iter()
            .take(options.terms_per_category)
            .map(|&i| terms[i].text.clone())
            .collect()
    };
    candidates
        .iter()
        .filter(|c| !c.terms.is_empty())
        .map(|candidate| {
            let name = terms[candidate.terms[0]].text.clone();
            let children = candidate
                .children
                .iter()
                .filter(|sub| !sub.is_empty())
                .map(|sub| {
                    let terms_of = texts(sub);
                    let child_name = terms_of
                        .iter()
                        .find(|t| **t != name)
                        .cloned()
                        .unwrap_or_else(|| name.clone());
                    Category {
                        name: child_name,
                        terms: terms_of,
                        children: Vec::new(),
                    }
                })
                .collect();
            Category {
                terms: texts(&candidate.terms),
                name,
                children,
            }
        })
        .collect()
}

/// The chunks that support each category (subcategories named
/// `parent/child`) under extraction's default thresholds ([`labels`]).
fn support(
    task: &Task,
    chunks: &[Chunk],
    categories: &[Category],
) -> anyhow::Result<BTreeMap<String, BTreeSet<usize>>> {
    let mut matchers = Vec::new();
    for category in categories {
        let parent = matchers.len();
        matchers.push(Matcher::new(category.name.clone(), &category.terms, None));
        for child in &category.children {
            matchers.push(Matcher::new(
                format!("{}/{}", category.name, child.name),
                &child.terms,
                Some(parent),
            ));
        }
    }
    let thresholds = labels::Options::default();
    let mut out: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, chunk) in chunks.iter().enumerate() {
        task.check()?;
        for assignment in labels::label(&matchers, &chunk.text, &thresholds) {
            out.entry(assignment.name).or_default().insert(i);
        }
    }
    Ok(out)
}

/// The taxonomy from `candidates`, in two rounds. First, each category
/// keeps only the terms used mostly (more than half their uses) in the
/// chunks that support it, which sheds words that merely recur in two
/// topics; a category or subcategory left with one term goes. Then it keeps the best `max_categories` categories at least two
/// chunks support, so that every category can be found in the labelled
/// chunks; subcategories fewer than two chunks support are dropped, and
/// with them a lone remaining one. Dropping a category only raises the
/// others' share of a chunk's best score, so what is kept stays supported.
fn supported(
    task: &Task,
    chunks: &[Chunk],
    terms: &[Term],
    mut candidates: Vec<Candidate>,
    options: &Options,
) -> anyhow::Result<Vec<Category>> {
    let first = named(terms, &candidates, options);
    let chunks_of = support(task, chunks, &first)?;
    let mostly_within = |term: usize, within: Option<&BTreeSet<usize>>| {
        let Some(within) = within else { return true };
        let (inside, all) =
            terms[term]
                .uses
                .iter()
                .fold((0, 0), |(inside, all), &(chunk, count)| {
                    let here = if within.contains(&chunk) { count } else { 0 };
                    (inside + here, all + count)
                });
        inside * 2 > all
    };
    for (candidate, category) in candidates.iter_mut().zip(&first) {
        let group = candidate.terms.len() >= 2;
        candidate
            .terms
            .retain(|&t| mostly_within(t, chunks_of.get(&category.name)));
        // A group of terms left with one is no longer a topic of its own.
        if group && candidate.terms.len() < 2 {
            candidate.terms.clear();
        }
        for (sub, child) in candidate.children.iter_mut().zip(&category.children) {
            let name = format!("{}/{}", category.name, child.name);
            sub.retain(|&t| mostly_within(t, chunks_of.get(&name)));
        }
    }
    candidates.retain(|candidate| !candidate.terms.is_empty());
    for candidate in &mut candidates {
        candidate.children.retain(|sub| sub.len() >= 2);
    }
    let second = named(terms, &candidates, options);
    let chunks_of = support(task, chunks, &second)?;
    let supported = |name: &str| chunks_of.get(name).is_some_and(|c| c.len() >= 2);
    let mut out: Vec<Category> = second
        .into_iter()
        .filter(|category| supported(&category.name))
        .take(options.max_categories)
        .collect();
    for category in &mut out {
        let parent = category.name.clone();
        category
            .children
            .retain(|child| supported(&format!("{parent}/{}", child.name)));
        if category.children.len() < 2 {
            category.children.clear();
        }
    }
    Ok(out)
}
