//! `extraction`: each section of a known document labelled with its topic,
//! with evidence; inline taxonomy and chunks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jobd::pipeline::extraction;
use serde_json::json;

use super::{dirs, docs_root, ok, read_jsonl, sections, terms_of, topic_of, topics_taxonomy};

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
    let chunks = read_jsonl(data.path(), &documents.result.as_ref().unwrap()["artifact"]);
    let labelled = read_jsonl(data.path(), &result["artifact"]);
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
    let lines = read_jsonl(data.path(), &inline["artifact"]);
    assert_eq!(lines[0]["categories"][0]["name"], "space");
    assert_eq!(
        lines[0]["categories"][0]["evidence"][0],
        "The telescope showed two planets."
    );
    assert_eq!(lines[1]["categories"], json!([]));
    assert_eq!(inline["per_category"], json!({"space": 1}));
}
