//! `taxonomy_processing`: the three topics of a known document, the same
//! every time, and chunk artifacts read only from the allowed directories.

use std::sync::Arc;

use jobd::pipeline::taxonomy;
use serde_json::{Value, json};

use super::{
    artifact_file, completed, dirs, ok, read_jsonl, run, terms_of, topic_of, topics_taxonomy,
    topics_taxonomy_with,
};

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
        &std::fs::read_to_string(artifact_file(data.path(), &first["artifact"])).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["categories"], first["categories"]);
    assert_eq!(
        first["chunks"],
        documents.result.as_ref().unwrap()["chunks"]
    );

    check_three_topics(&first);

    // The same chunks given inline give the same taxonomy.
    let chunks: Vec<Value> =
        read_jsonl(data.path(), &documents.result.as_ref().unwrap()["artifact"])
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

    // With chunks of several paragraphs, two to a section, the topics still
    // come out (a category needs two chunks that support it, so with the
    // default chunk size, about a section to a chunk, they would not).
    let (documents, taxonomy) =
        topics_taxonomy_with(data.path(), json!({"chunk_size": 700, "chunk_overlap": 0})).await;
    assert!(
        documents.result.as_ref().unwrap()["chunks"]
            .as_u64()
            .unwrap()
            <= 8
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
async fn only_the_artifacts_of_its_own_users_dependencies_are_read() {
    let data = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let path = elsewhere.path().join("chunks.jsonl");
    std::fs::write(
        &path,
        "{\"chunk_id\":\"a#0\",\"source\":\"a\",\"text\":\"secret\"}\n",
    )
    .unwrap();
    let handler = Arc::new(taxonomy::handler(dirs(data.path())));
    let (documents, _) = topics_taxonomy(data.path()).await;
    let artifact = documents.result.as_ref().unwrap()["artifact"].clone();
    let in_root = super::docs_root().join("notes.txt");
    // A file outside the artifacts, one under the documents root, and a
    // real artifact of a job this one does not depend on.
    for named in [json!(path), json!(in_root), artifact.clone()] {
        let error = run(
            handler.clone(),
            json!({"chunks_artifacts": [named]}),
            vec![],
        )
        .await
        .0
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("not an artifact of a job this one depends on"),
            "{named}: {error:#}"
        );
    }
    // Named through `..` from a dependency's directory into another's.
    let dependency = completed("document_processing", json!({}));
    let sneaky = format!("{}/../{}/chunks.jsonl", dependency.id, documents.id);
    let error = run(
        handler.clone(),
        json!({"chunks_artifacts": [sneaky]}),
        vec![dependency],
    )
    .await
    .0
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("not an artifact of a job this one depends on"),
        "{error:#}"
    );
    // Another user's job, even as a dependency, is not read.
    let mut theirs = (*documents).clone();
    theirs.user_id = "someone-else".into();
    let error = run(handler.clone(), json!({}), vec![Arc::new(theirs)])
        .await
        .0
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("belongs to another user"),
        "{error:#}"
    );
    // The same user's dependency, named or not, is read.
    let named = ok(
        handler.clone(),
        json!({"chunks_artifacts": [artifact]}),
        vec![completed("sleep", json!({})), documents.clone()],
    )
    .await;
    assert!(named["chunks"].as_u64().unwrap() > 0, "{named}");
    let error = run(handler, json!({}), vec![]).await.0.unwrap_err();
    assert!(
        format!("{error:#}").contains("no chunks given"),
        "{error:#}"
    );
}
