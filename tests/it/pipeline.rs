//! The document-pipeline handlers called directly: chunking of real
//! documents, confinement to the documents root, a deterministic taxonomy,
//! extraction of the obvious categories, the dataset split, and prompt
//! cancellation that leaves no artifact behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobd::model::{Job, JobStatus, Progress};
use jobd::pipeline::{Dirs, dataset, documents, extraction, taxonomy};
use jobd::runtime::{JobContext, JobHandler};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn docs_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/docs")
}

fn dirs(data_dir: &Path) -> Dirs {
    Dirs {
        documents_root: docs_root(),
        data_dir: data_dir.to_path_buf(),
    }
}

fn job(job_type: &str, parameters: Value) -> Job {
    Job {
        id: uuid::Uuid::now_v7(),
        job_type: job_type.into(),
        user_id: "tester".into(),
        status: JobStatus::Running,
        priority: 0,
        parameters,
        result: None,
        error: None,
        progress: Progress::default(),
        attempts: 1,
        max_attempts: 1,
        interruptions: 0,
        timeout_seconds: None,
        created_at: 0,
        scheduled_for: None,
        started_at: Some(0),
        completed_at: None,
        updated_at: 0,
        worker_id: None,
        revision: 1,
        depends_on: Vec::new(),
        waiting_dependencies: 0,
        cancelled_by: None,
    }
}

/// A completed job of `job_type` with `result`, to depend on.
fn completed(job_type: &str, result: Value) -> Arc<Job> {
    let mut job = job(job_type, json!({}));
    job.status = JobStatus::Completed;
    job.result = Some(result);
    Arc::new(job)
}

/// A handler running in the background, with its progress and stop signal.
struct Running {
    job_id: uuid::Uuid,
    handle: JoinHandle<anyhow::Result<Value>>,
    progress: watch::Receiver<Option<Progress>>,
    cancel: CancellationToken,
}

fn start(handler: Arc<dyn JobHandler>, params: Value, deps: Vec<Arc<Job>>) -> Running {
    let mut job = job("pipeline", params);
    job.depends_on = deps.iter().map(|dep| dep.id).collect();
    let job_id = job.id;
    let (tx, progress) = watch::channel(None);
    let cancel = CancellationToken::new();
    let ctx = JobContext::new(Arc::new(job), tx, cancel.clone()).with_dependencies(deps);
    let handle = tokio::spawn(async move { handler.run(ctx).await });
    Running {
        job_id,
        handle,
        progress,
        cancel,
    }
}

/// Runs a handler to its end; returns the result and the last progress.
async fn run(
    handler: Arc<dyn JobHandler>,
    params: Value,
    deps: Vec<Arc<Job>>,
) -> (anyhow::Result<Value>, Option<Progress>) {
    let running = start(handler, params, deps);
    let result = running.handle.await.unwrap();
    let progress = *running.progress.borrow();
    (result, progress)
}

async fn ok(handler: Arc<dyn JobHandler>, params: Value, deps: Vec<Arc<Job>>) -> Value {
    match run(handler, params, deps).await.0 {
        Ok(result) => result,
        Err(e) => panic!("job failed: {e:#}"),
    }
}

fn read_jsonl(path: &Value) -> Vec<Value> {
    let path = path.as_str().expect("artifact path");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The names in the artifacts root.
fn artifact_entries(data_dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(data_dir.join("artifacts")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Checks the chunks of `source` (a document's full text): each within
/// `size` characters and equal to the source at its offset, consecutive
/// chunks overlapping, and every non-blank character covered.
fn check_chunks(source: &str, chunks: &[Value], size: usize) {
    assert!(
        chunks.len() >= 3,
        "expected several chunks, got {}",
        chunks.len()
    );
    let mut covered = vec![false; source.len()];
    let mut overlaps = 0;
    let mut previous_end = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["index"], i);
        let text = chunk["text"].as_str().unwrap();
        let offset = chunk["offset"].as_u64().unwrap() as usize;
        assert!(
            text.chars().count() <= size,
            "chunk {i} has {} characters, over {size}",
            text.chars().count()
        );
        assert_eq!(
            &source[offset..offset + text.len()],
            text,
            "chunk {i} differs from its source"
        );
        if i > 0 && offset < previous_end {
            overlaps += 1;
        }
        previous_end = offset + text.len();
        covered[offset..offset + text.len()]
            .iter_mut()
            .for_each(|c| *c = true);
    }
    assert!(overlaps > 0, "no two consecutive chunks overlap");
    for (at, c) in source.char_indices() {
        assert!(
            covered[at] || c.is_whitespace(),
            "character {c:?} at byte {at} is in no chunk"
        );
    }
}

#[tokio::test]
async fn markdown_and_text_are_chunked_within_size_with_overlap_and_nothing_lost() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(documents::handler(dirs(data.path())));
    // text-splitter overlaps chunks by whole units of the level it cut at
    // (here lines of about 75 characters, or words), so sizes below a line
    // show overlap.
    for (file, size, overlap) in [("topics.md", 60, 20), ("notes.txt", 50, 15)] {
        let params = json!({"path": file, "chunk_size": size, "chunk_overlap": overlap});
        let (result, progress) = run(handler.clone(), params, vec![]).await;
        let result = result.unwrap();
        let source = std::fs::read_to_string(docs_root().join(file)).unwrap();
        assert_eq!(result["documents"], 1);
        assert_eq!(result["bytes"], source.len());
        let chunks = read_jsonl(&result["artifact"]);
        assert_eq!(result["chunks"], chunks.len());
        assert!(chunks.iter().all(|c| c["source"] == file));
        assert_eq!(chunks[1]["chunk_id"], format!("{file}#1"));
        check_chunks(&source, &chunks, size);
        let progress = progress.unwrap();
        assert_eq!(progress.items_processed, Some(source.len() as u64));
        assert_eq!(progress.total_items, Some(source.len() as u64));
    }
    // The Markdown splitter keeps headings with their sections' text: no
    // chunk ends with a heading line.
    let params = json!({"path": "topics.md", "chunk_size": 300, "chunk_overlap": 0});
    let chunks = read_jsonl(&ok(handler, params, vec![]).await["artifact"]);
    for chunk in &chunks {
        let text = chunk["text"].as_str().unwrap();
        let last_line = text.lines().last().unwrap();
        assert!(
            !last_line.starts_with('#'),
            "chunk ends in a heading: {text:?}"
        );
    }
}

#[tokio::test]
async fn a_directory_is_walked_in_order_and_html_is_reduced_to_text() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(documents::handler(dirs(data.path())));
    let result = ok(handler, json!({"path": "."}), vec![]).await;
    assert_eq!(result["documents"], 4);
    assert_eq!(result["skipped_files"], 1, "the .rst file is skipped");
    let chunks = read_jsonl(&result["artifact"]);
    let sources: Vec<&str> = chunks
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    let mut distinct = sources.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        [
            "more/orchard.markdown",
            "notes.txt",
            "page.html",
            "topics.md"
        ]
    );
    let page: String = chunks
        .iter()
        .filter(|c| c["source"] == "page.html")
        .map(|c| c["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(page.contains("Lenses & lamps"), "{page}");
    assert!(page.contains("280 BC"), "{page}");
    assert!(page.contains("A Fresnel lens bends the light"), "{page}");
    for absent in ["<", "console.log", "font-family", "test suite", "&amp;"] {
        assert!(!page.contains(absent), "{absent:?} left in {page}");
    }
}

#[tokio::test]
async fn inline_documents_are_chunked_by_their_format() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(documents::handler(dirs(data.path())));
    let params = json!({"documents": [
        {"name": "a.md", "text": "# Title\n\nSome *Markdown* text."},
        {"name": "b.html", "text": "<p>Some <b>HTML</b> text.</p>"},
        {"name": "c", "text": "Plain."},
    ]});
    let result = ok(handler.clone(), params, vec![]).await;
    assert_eq!(result["documents"], 3);
    let texts: Vec<(String, String)> = read_jsonl(&result["artifact"])
        .iter()
        .map(|c| {
            (
                c["source"].as_str().unwrap().into(),
                c["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        texts,
        [
            ("a.md".into(), "# Title\n\nSome *Markdown* text.".into()),
            ("b.html".into(), "Some HTML text.".into()),
            ("c".into(), "Plain.".into()),
        ]
    );
    let single = ok(
        handler.clone(),
        json!({"text": "Just this.", "name": "x.txt"}),
        vec![],
    )
    .await;
    assert_eq!(read_jsonl(&single["artifact"])[0]["chunk_id"], "x.txt#0");

    for (params, message) in [
        (
            json!({"documents": [{"name": "a", "text": "1"}, {"name": "a", "text": "2"}]}),
            "used twice",
        ),
        (json!({"text": "x", "path": "notes.txt"}), "exactly one"),
        (
            json!({"text": "x", "chunk_size": 10, "chunk_overlap": 10}),
            "smaller than chunk_size",
        ),
        (
            json!({"text": "x", "chunk_size": "big"}),
            "chunk_size must be an integer",
        ),
        (json!({"path": "more/ignored.rst"}), "unsupported file type"),
    ] {
        let error = run(handler.clone(), params, vec![]).await.0.unwrap_err();
        assert!(format!("{error:#}").contains(message), "{error:#}");
    }
}

#[tokio::test]
async fn paths_outside_the_documents_root_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(documents::handler(dirs(data.path())));
    let outside_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    for path in [
        "../../Cargo.toml".to_string(),
        "more/../../README.md".to_string(),
        outside_file.display().to_string(),
        "/etc/passwd".to_string(),
        "/".to_string(),
    ] {
        let error = run(handler.clone(), json!({"path": path}), vec![])
            .await
            .0
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("outside the documents root"),
            "{path}: {error:#}"
        );
    }

    // Symbolic links leading out are refused, named or met in a directory.
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("secret.txt"), "secret").unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("sub/fine.txt"), "fine").unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("secret.txt"),
        root.path().join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.path().join("sub/escape")).unwrap();
    let handler = Arc::new(documents::handler(Dirs {
        documents_root: root.path().to_path_buf(),
        data_dir: data.path().to_path_buf(),
    }));
    for path in ["link.txt", "sub/escape/secret.txt", "sub"] {
        let error = run(handler.clone(), json!({"path": path}), vec![])
            .await
            .0
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("leads outside the documents root"),
            "{path}: {error:#}"
        );
    }
    let fine = ok(handler, json!({"path": "sub/fine.txt"}), vec![]).await;
    assert_eq!(fine["chunks"], 1);
    // Only the successful job left an artifact; no temporary directories.
    assert_eq!(artifact_entries(data.path()).len(), 1);
}

/// Runs document_processing on topics.md in paragraph-sized chunks, then a
/// taxonomy over it; returns the documents job and the taxonomy job.
async fn topics_taxonomy(data_dir: &Path) -> (Arc<Job>, Arc<Job>) {
    topics_taxonomy_with(data_dir, json!({"chunk_size": 400, "chunk_overlap": 0})).await
}

/// As [`topics_taxonomy`], with these chunking parameters.
async fn topics_taxonomy_with(data_dir: &Path, chunking: Value) -> (Arc<Job>, Arc<Job>) {
    let mut params = chunking;
    params["path"] = json!("topics.md");
    let documents = ok(Arc::new(documents::handler(dirs(data_dir))), params, vec![]).await;
    let documents = completed("document_processing", documents);
    let taxonomy = ok(
        Arc::new(taxonomy::handler(dirs(data_dir))),
        json!({}),
        vec![documents.clone()],
    )
    .await;
    (documents, completed("taxonomy_processing", taxonomy))
}

/// The topic a category is about: the section of topics.md that mentions
/// its terms (as whole words) most, if one does so more than the others.
fn topic_of(terms: &[&str]) -> &'static str {
    let source = std::fs::read_to_string(docs_root().join("topics.md")).unwrap();
    let mut mentions: Vec<(usize, &'static str)> = sections(&source)
        .into_iter()
        .map(|(topic, section)| {
            let lower = section.to_lowercase();
            let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
            let count = terms
                .iter()
                .map(|t| words.iter().filter(|w| *w == t).count())
                .sum();
            (count, topic)
        })
        .collect();
    mentions.sort_unstable_by(|a, b| b.cmp(a));
    if mentions[0].0 > mentions[1].0 {
        mentions[0].1
    } else {
        "none"
    }
}

/// The three topic sections of topics.md: `(topic, text)`.
fn sections(source: &str) -> Vec<(&'static str, &str)> {
    let at = |heading: &str| source.find(heading).unwrap();
    let (cooking, astronomy, football) = (at("## Cooking"), at("## Astronomy"), at("## Football"));
    vec![
        ("cooking", &source[cooking..astronomy]),
        ("astronomy", &source[astronomy..football]),
        ("football", &source[football..]),
    ]
}

fn terms_of(category: &Value) -> Vec<&str> {
    category["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_taxonomy_finds_the_three_topics_and_is_the_same_every_time() {
    let data = tempfile::tempdir().unwrap();
    let (documents, first) = topics_taxonomy(data.path()).await;
    let first = first.result.clone().unwrap();
    let second = ok(
        Arc::new(taxonomy::handler(dirs(data.path()))),
        json!({}),
        vec![documents.clone()],
    )
    .await;
    assert_eq!(first["categories"], second["categories"]);
    assert_ne!(
        first["artifact"], second["artifact"],
        "each job has its own artifact"
    );
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(first["artifact"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["categories"], first["categories"]);
    assert_eq!(
        first["chunks"],
        documents.result.as_ref().unwrap()["chunks"]
    );

    check_three_topics(&first);

    // The same chunks given inline give the same taxonomy.
    let chunks: Vec<Value> = read_jsonl(&documents.result.as_ref().unwrap()["artifact"])
        .into_iter()
        .map(|c| c["text"].clone())
        .collect();
    let inline = ok(
        Arc::new(taxonomy::handler(dirs(data.path()))),
        json!({"chunks": chunks}),
        vec![],
    )
    .await;
    assert_eq!(inline["categories"], first["categories"]);

    // With the default chunk size each section is about one chunk; the
    // topics still come out.
    let (documents, taxonomy) = topics_taxonomy_with(data.path(), json!({})).await;
    assert!(
        documents.result.as_ref().unwrap()["chunks"]
            .as_u64()
            .unwrap()
            <= 6
    );
    check_three_topics(taxonomy.result.as_ref().unwrap());
}

/// Checks that a taxonomy of topics.md has one category per topic, and
/// that its terms are on topic.
fn check_three_topics(taxonomy: &Value) {
    let categories = taxonomy["categories"].as_array().unwrap();
    let topics: Vec<&str> = categories.iter().map(|c| topic_of(&terms_of(c))).collect();
    for topic in ["cooking", "astronomy", "football"] {
        assert_eq!(
            topics.iter().filter(|t| **t == topic).count(),
            1,
            "one category about {topic}: {taxonomy:#}"
        );
    }
    // Most terms of a category, and at least half of each subcategory's,
    // belong to its topic (small texts leave a few incidental words such as
    // "high" or "took", and words like "point" that occur in two sections).
    for category in categories {
        let topic = topic_of(&terms_of(category));
        let children = category["children"].as_array().into_iter().flatten();
        let terms = terms_of(category);
        let on_topic = terms.iter().filter(|t| topic_of(&[t]) == topic).count();
        assert!(on_topic * 4 >= terms.len() * 3, "{topic}: {category:#}");
        for group in children {
            let terms = terms_of(group);
            let on_topic = terms.iter().filter(|t| topic_of(&[t]) == topic).count();
            assert!(on_topic * 2 >= terms.len(), "{topic}: {group:#}");
        }
    }
}

#[tokio::test]
async fn extraction_assigns_each_section_its_topic_with_evidence() {
    let data = tempfile::tempdir().unwrap();
    let (documents, taxonomy) = topics_taxonomy(data.path()).await;
    let result = ok(
        Arc::new(extraction::handler(dirs(data.path()))),
        json!({}),
        vec![documents.clone(), taxonomy.clone()],
    )
    .await;
    let categories = taxonomy.result.as_ref().unwrap()["categories"]
        .as_array()
        .unwrap()
        .clone();
    let topic_of_category: BTreeMap<String, &str> = categories
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                topic_of(&terms_of(c)),
            )
        })
        .collect();

    let source = std::fs::read_to_string(docs_root().join("topics.md")).unwrap();
    let chunks = read_jsonl(&documents.result.as_ref().unwrap()["artifact"]);
    let labelled = read_jsonl(&result["artifact"]);
    assert_eq!(labelled.len(), chunks.len());
    assert_eq!(result["chunks"], chunks.len());
    let mut assignments = 0;
    let mut checked = 0;
    for (chunk, line) in chunks.iter().zip(&labelled) {
        assert_eq!(chunk["chunk_id"], line["chunk_id"]);
        assert_eq!(chunk["text"], line["text"]);
        let text = chunk["text"].as_str().unwrap();
        let assigned = line["categories"].as_array().unwrap();
        assignments += assigned.len();
        for assignment in assigned {
            let score = assignment["score"].as_f64().unwrap();
            assert!(score > 0.0 && score <= 1.0);
            let evidence = assignment["evidence"].as_array().unwrap();
            assert!(!evidence.is_empty(), "no evidence for {assignment}");
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            for sentence in evidence {
                assert!(flat.contains(sentence.as_str().unwrap().trim_start_matches("# ")));
            }
        }
        // A paragraph inside a topic's section gets that topic, and no other.
        let offset = chunk["offset"].as_u64().unwrap() as usize;
        let Some((topic, _)) = sections(&source).into_iter().find(|(_, section)| {
            let start = section.as_ptr() as usize - source.as_ptr() as usize;
            offset >= start && offset + text.len() <= start + section.len()
        }) else {
            continue;
        };
        checked += 1;
        let topics: BTreeSet<&str> = assigned
            .iter()
            .map(|a| {
                let name = a["name"].as_str().unwrap();
                topic_of_category[name.split('/').next().unwrap()]
            })
            .collect();
        assert_eq!(
            topics,
            BTreeSet::from([topic]),
            "chunk {text:?} got {assigned:#?}"
        );
    }
    assert!(checked >= 9, "only {checked} chunks lie within a section");
    assert_eq!(result["assignments"], assignments);
    let per_category = result["per_category"].as_object().unwrap();
    assert_eq!(
        per_category
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        assignments as u64
    );

    // Inline taxonomy and chunks work the same way.
    let inline = ok(
        Arc::new(extraction::handler(dirs(data.path()))),
        json!({
            "taxonomy": [{"name": "space", "terms": ["telescope", "planets", "orbit"]}],
            "chunks": ["The telescope showed two planets.", "Knead the dough."],
        }),
        vec![],
    )
    .await;
    let lines = read_jsonl(&inline["artifact"]);
    assert_eq!(lines[0]["categories"][0]["name"], "space");
    assert_eq!(
        lines[0]["categories"][0]["evidence"][0],
        "The telescope showed two planets."
    );
    assert_eq!(lines[1]["categories"], json!([]));
    assert_eq!(inline["per_category"], json!({"space": 1}));
}

/// A minimal RFC 4180 reader for the CSV test.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn the_dataset_holds_every_labelled_chunk_split_by_the_seed() {
    let data = tempfile::tempdir().unwrap();
    let (documents, taxonomy) = topics_taxonomy(data.path()).await;
    let extraction = ok(
        Arc::new(extraction::handler(dirs(data.path()))),
        json!({}),
        vec![documents, taxonomy],
    )
    .await;
    let labelled: Vec<Value> = read_jsonl(&extraction["artifact"])
        .into_iter()
        .filter(|l| !l["categories"].as_array().unwrap().is_empty())
        .collect();
    let n = labelled.len();
    assert!(n >= 9);
    let extraction = completed("extraction", extraction);
    let handler = Arc::new(dataset::handler(dirs(data.path())));

    let result = ok(handler.clone(), json!({}), vec![extraction.clone()]).await;
    let validation_records = (n as f64 * 0.2).round() as usize;
    assert_eq!(result["records"], n);
    assert_eq!(result["validation_records"], validation_records);
    assert_eq!(result["train_records"], n - validation_records);
    let train = read_jsonl(&result["train"]);
    let validation = read_jsonl(&result["validation"]);
    assert_eq!(
        (train.len(), validation.len()),
        (n - validation_records, validation_records)
    );
    let ids = |records: &[Value]| -> BTreeSet<String> {
        records
            .iter()
            .map(|r| r["chunk_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(ids(&train).is_disjoint(&ids(&validation)));
    let all: BTreeSet<String> = ids(&train).union(&ids(&validation)).cloned().collect();
    assert_eq!(all, ids(&labelled));
    let by_id: BTreeMap<&str, &Value> = labelled
        .iter()
        .map(|l| (l["chunk_id"].as_str().unwrap(), l))
        .collect();
    let mut per_category: BTreeMap<String, u64> = BTreeMap::new();
    for record in train.iter().chain(&validation) {
        let source = by_id[record["chunk_id"].as_str().unwrap()];
        assert_eq!(record["text"], source["text"]);
        assert_eq!(record["source"], "topics.md");
        let names: Vec<&Value> = source["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(
            record["categories"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            names
        );
        for name in names {
            *per_category
                .entry(name.as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(result["per_category"], json!(per_category));

    // The same seed gives the same files; another seed another order.
    let again = ok(
        handler.clone(),
        json!({"seed": 42}),
        vec![extraction.clone()],
    )
    .await;
    assert_eq!(read_jsonl(&again["train"]), train);
    let other = ok(
        handler.clone(),
        json!({"seed": 7}),
        vec![extraction.clone()],
    )
    .await;
    assert_ne!(read_jsonl(&other["train"]), train);

    // CSV: a header and the same records, quoted where needed.
    let csv = ok(
        handler.clone(),
        json!({"format": "csv", "validation_fraction": 0.5}),
        vec![extraction],
    )
    .await;
    assert!(csv["train"].as_str().unwrap().ends_with("train.csv"));
    let rows = parse_csv(&std::fs::read_to_string(csv["train"].as_str().unwrap()).unwrap());
    assert_eq!(rows[0], ["text", "categories", "source", "chunk_id"]);
    assert_eq!(rows.len() - 1, n - (n as f64 * 0.5).round() as usize);
    for row in &rows[1..] {
        let source = by_id[row[3].as_str()];
        assert_eq!(row[0], source["text"].as_str().unwrap());
        assert_eq!(row[2], "topics.md");
    }

    // Inline extractions, categories as names or objects.
    let inline: Vec<Value> = (0..10)
        .map(|i| {
            json!({"chunk_id": format!("c{i}"), "source": "s", "text": format!("text {i}"),
                   "categories": if i % 2 == 0 { json!(["even"]) } else { json!([{"name": "odd", "score": 1.0}]) }})
        })
        .chain([json!({"chunk_id": "none", "source": "s", "text": "t", "categories": []})])
        .collect();
    let result = ok(
        handler,
        json!({"extractions": inline, "validation_fraction": 0.3, "seed": 1}),
        vec![],
    )
    .await;
    assert_eq!(result["records"], 10);
    assert_eq!(result["skipped_unlabeled"], 1);
    assert_eq!(
        (
            result["train_records"].as_u64(),
            result["validation_records"].as_u64()
        ),
        (Some(7), Some(3))
    );
    assert_eq!(result["per_category"], json!({"even": 5, "odd": 5}));
}

/// Starts `handler`, cancels it once it has reported progress, and checks
/// that it stops within a second with "cancelled" and leaves no artifact.
async fn cancels_promptly(
    data_dir: &Path,
    handler: Arc<dyn JobHandler>,
    params: Value,
    deps: Vec<Arc<Job>>,
) {
    let before = artifact_entries(data_dir);
    let mut running = start(handler, params, deps);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = running
            .progress
            .borrow()
            .is_some_and(|p| p.fraction > 0.0 || p.items_processed.unwrap_or(0) > 0);
        if started {
            break;
        }
        assert!(
            !running.handle.is_finished(),
            "the job ended before it could be cancelled"
        );
        assert!(Instant::now() < deadline, "no progress within a minute");
        let _ = tokio::time::timeout(Duration::from_millis(100), running.progress.changed()).await;
    }
    let progress = running.progress.borrow().unwrap();
    assert!(
        progress.fraction < 0.5,
        "cancel came too late to test: {progress:?}"
    );
    let cancelled_at = Instant::now();
    running.cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(1), &mut running.handle)
        .await
        .expect("the job did not stop within a second of its cancel")
        .unwrap();
    let elapsed = cancelled_at.elapsed();
    let error = outcome.expect_err("a cancelled job must fail");
    assert!(format!("{error:#}").contains("cancelled"), "{error:#}");
    assert!(
        elapsed < Duration::from_secs(1),
        "stopped after {elapsed:?}"
    );
    let after = artifact_entries(data_dir);
    assert_eq!(after, before, "artifacts left behind by {}", running.job_id);
}

/// Generated prose over a few topics, `paragraphs` paragraphs long.
fn generated_text(paragraphs: usize) -> String {
    let topics = [
        "The telescope tracked the planets and stars across the night sky while astronomers logged the orbit.",
        "The striker scored a goal and the goalkeeper argued with the referee as the players left the pitch.",
        "Simmer the sauce with garlic and onions, then bake the dough in a hot oven until the bread is golden.",
    ];
    (0..paragraphs)
        .map(|i| format!("Paragraph {i}. {} {}", topics[i % 3], topics[(i / 3) % 3]))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[tokio::test]
async fn document_processing_stops_promptly_when_cancelled() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(documents::handler(dirs(data.path())));
    let text = generated_text(40_000);
    cancels_promptly(
        data.path(),
        handler,
        json!({"text": text, "chunk_size": 200, "chunk_overlap": 20}),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn taxonomy_processing_stops_promptly_when_cancelled() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(taxonomy::handler(dirs(data.path())));
    let chunks: Vec<String> = generated_text(200_000)
        .split("\n\n")
        .map(str::to_owned)
        .collect();
    cancels_promptly(data.path(), handler, json!({"chunks": chunks}), vec![]).await;
}

#[tokio::test]
async fn extraction_stops_promptly_when_cancelled() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(extraction::handler(dirs(data.path())));
    let chunks: Vec<String> = generated_text(200_000)
        .split("\n\n")
        .map(str::to_owned)
        .collect();
    let taxonomy = json!([
        {"name": "astronomy", "terms": ["telescope", "planets", "stars", "orbit"]},
        {"name": "football", "terms": ["striker", "goal", "goalkeeper", "referee"]},
    ]);
    cancels_promptly(
        data.path(),
        handler,
        json!({"chunks": chunks, "taxonomy": taxonomy}),
        vec![],
    )
    .await;
}

#[tokio::test]
async fn dataset_generation_stops_promptly_when_cancelled() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    // A large extraction artifact, as an extraction job would leave it.
    let input_dir = data
        .path()
        .join("artifacts")
        .join(uuid::Uuid::now_v7().to_string());
    std::fs::create_dir_all(&input_dir).unwrap();
    let path = input_dir.join("extractions.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let lines = 400_000;
    for i in 0..lines {
        let line = json!({"chunk_id": format!("doc#{i}"), "source": "doc", "text": format!("Chunk {i} about the stars."),
                          "categories": [{"name": "astronomy", "score": 0.5, "evidence": ["Chunk about the stars."]}]});
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let extraction = completed(
        "extraction",
        json!({"artifact": path, "chunks": lines, "assignments": lines, "per_category": {"astronomy": lines}}),
    );
    let handler = Arc::new(dataset::handler(dirs(data.path())));
    cancels_promptly(data.path(), handler, json!({}), vec![extraction]).await;
}

#[tokio::test]
async fn artifacts_outside_the_allowed_directories_are_not_read() {
    let data = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let path = elsewhere.path().join("chunks.jsonl");
    std::fs::write(
        &path,
        "{\"chunk_id\":\"a#0\",\"source\":\"a\",\"text\":\"secret\"}\n",
    )
    .unwrap();
    let handler = Arc::new(taxonomy::handler(dirs(data.path())));
    let error = run(handler.clone(), json!({"chunks_artifacts": [path]}), vec![])
        .await
        .0
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("outside the artifacts"),
        "{error:#}"
    );
    let error = run(handler, json!({}), vec![]).await.0.unwrap_err();
    assert!(
        format!("{error:#}").contains("no chunks given"),
        "{error:#}"
    );
}
