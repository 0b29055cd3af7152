//! Taxonomy and extraction on real documents nobody here wrote (the Redis
//! README from Debian, python-dotenv's README from its wheel, the XZ Utils
//! README from Debian; see tests/data/README.md): category names are
//! readable terms, not stop words, URL pieces or numbers; a term's singular
//! and plural never make two categories; every category is assigned to at
//! least two chunks, each with its supporting sentences.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jobd::pipeline::{Dirs, documents, extraction, taxonomy};
use rust_stemmers::{Algorithm, Stemmer};
use serde_json::{Value, json};

use super::{completed, ok, read_jsonl};

fn real_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real")
}

/// Chunks `path` (under tests/data/real) with the default chunking, derives
/// its taxonomy and labels its chunks; returns the taxonomy result and the
/// extraction artifact's lines.
async fn taxonomy_and_labels(data_dir: &Path, path: &str) -> (Value, Vec<Value>) {
    let dirs = Dirs::local(Some(real_root()), data_dir.to_path_buf()).unwrap();
    let chunks = ok(
        Arc::new(documents::handler(dirs.clone())),
        json!({"path": path}),
        vec![],
    )
    .await;
    let chunks = completed("document_processing", chunks);
    let taxonomy = ok(
        Arc::new(taxonomy::handler(dirs.clone())),
        json!({}),
        vec![chunks.clone()],
    )
    .await;
    let taxonomy = completed("taxonomy_processing", taxonomy);
    let labels = ok(
        Arc::new(extraction::handler(dirs)),
        json!({}),
        vec![chunks, taxonomy.clone()],
    )
    .await;
    let lines = read_jsonl(data_dir, &labels["artifact"]);
    (taxonomy.result.clone().unwrap(), lines)
}

/// Every category name, subcategories as `parent/child`.
fn names(categories: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for category in categories.as_array().unwrap() {
        let name = category["name"].as_str().unwrap();
        out.push(name.to_owned());
        for child in category["children"].as_array().into_iter().flatten() {
            out.push(format!("{name}/{}", child["name"].as_str().unwrap()));
        }
    }
    out
}

/// Words no category may be named after or contain besides the English
/// stop words: URL pieces and markup leftovers.
const NOT_TERMS: &[&str] = &[
    "http", "https", "www", "com", "org", "io", "html", "amp", "nbsp", "quot", "href",
];

/// Checks the categories of one document and its labels.
fn check(document: &str, taxonomy: &Value, lines: &[Value]) {
    let categories = &taxonomy["categories"];
    let all = names(categories);
    assert!(all.len() >= 2, "{document}: {taxonomy:#}");
    // Names and terms are words: no stop word, URL piece or number.
    let stop_words = stop_words::lookup(stop_words::Language::English).unwrap();
    for category in categories.as_array().unwrap() {
        let children = category["children"].as_array().cloned().unwrap_or_default();
        for named in std::iter::once(category).chain(&children) {
            let name = named["name"].as_str().unwrap();
            for term in std::iter::once(name).chain(
                named["terms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap()),
            ) {
                for word in term.split(' ') {
                    assert!(
                        word.chars().count() >= 3
                            && word.chars().all(char::is_alphabetic)
                            && !NOT_TERMS.contains(&word)
                            && !stop_words.contains(&word),
                        "{document}: {term:?} in {named}"
                    );
                }
            }
        }
    }
    // Singular and plural never make two categories, nor two terms of
    // one: no two names among the top level, or among a category's
    // children or terms, have the same English (Snowball) stems.
    let stemmer = Stemmer::create(Algorithm::English);
    let plural_free = |names: &[&str]| {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for name in names {
            let key = name
                .split(' ')
                .map(|w| stemmer.stem(&w.to_lowercase()).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            if let Some(other) = seen.insert(key, name) {
                panic!("{document}: {other:?} and {name:?} are one term");
            }
        }
    };
    let top: Vec<&str> = categories
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    plural_free(&top);
    for category in categories.as_array().unwrap() {
        let children: Vec<&str> = category["children"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        plural_free(&children);
        let terms: Vec<&str> = category["terms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        plural_free(&terms);
    }
    // Every category is assigned to at least two chunks, each time with a
    // supporting sentence of the chunk.
    let mut chunks_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut labels_per_chunk = Vec::new();
    for line in lines {
        let text = line["text"].as_str().unwrap();
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let assigned = line["categories"].as_array().unwrap();
        labels_per_chunk.push(assigned.len());
        for assignment in assigned {
            *chunks_of
                .entry(assignment["name"].as_str().unwrap().to_owned())
                .or_default() += 1;
            let evidence = assignment["evidence"].as_array().unwrap();
            assert!(!evidence.is_empty(), "{document}: {assignment}");
            for sentence in evidence {
                let sentence = sentence.as_str().unwrap();
                assert!(
                    flat.contains(sentence.trim_start_matches(['#', '>', '*', '-', ' '])),
                    "{document}: {sentence:?} is not in its chunk"
                );
            }
        }
    }
    eprintln!(
        "{document}: chunks per category {chunks_of:?}, labels per chunk {labels_per_chunk:?}"
    );
    for name in &all {
        let support = chunks_of.get(name).copied().unwrap_or(0);
        assert!(
            support >= 2,
            "{document}: {name:?} is assigned to {support} chunk(s)"
        );
    }
    let names: BTreeSet<&String> = all.iter().collect();
    assert!(chunks_of.keys().all(|name| names.contains(name)));
}

#[tokio::test]
async fn categories_of_real_documents_are_terms_each_supported_by_two_chunks() {
    let data = tempfile::tempdir().unwrap();
    let mut derived = Vec::new();
    for document in [
        "redis/README.md",
        "python-dotenv/README.md",
        "xz-utils/README.txt",
    ] {
        derived.push((document, taxonomy_and_labels(data.path(), document).await));
    }
    // All names first, for a reader comparing runs, then the checks.
    for (document, (taxonomy, _)) in &derived {
        eprintln!("{document}: {:?}", names(&taxonomy["categories"]));
    }
    for (document, (taxonomy, lines)) in &derived {
        check(document, taxonomy, lines);
    }
}
