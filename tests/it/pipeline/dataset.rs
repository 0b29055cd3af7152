//! `dataset_generation`: every labelled chunk, split by the seed, as JSON
//! Lines or CSV.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jobd::pipeline::{dataset, extraction};
use serde_json::{Value, json};

use super::{artifact_file, completed, dirs, ok, read_jsonl, topics_taxonomy};

/// The rows of a CSV text, the header included.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|row| row.unwrap().iter().map(str::to_owned).collect())
        .collect()
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
    let labelled: Vec<Value> = read_jsonl(data.path(), &extraction["artifact"])
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
    let train = read_jsonl(data.path(), &result["train"]);
    let validation = read_jsonl(data.path(), &result["validation"]);
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
    assert_eq!(read_jsonl(data.path(), &again["train"]), train);
    let other = ok(
        handler.clone(),
        json!({"seed": 7}),
        vec![extraction.clone()],
    )
    .await;
    assert_ne!(read_jsonl(data.path(), &other["train"]), train);

    // CSV: a header and the same records, quoted where needed.
    let csv = ok(
        handler.clone(),
        json!({"format": "csv", "validation_fraction": 0.5}),
        vec![extraction],
    )
    .await;
    assert!(csv["train"].as_str().unwrap().ends_with("train.csv"));
    let rows =
        parse_csv(&std::fs::read_to_string(artifact_file(data.path(), &csv["train"])).unwrap());
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

#[tokio::test]
async fn the_csv_is_rfc_4180_with_crlf_and_quoted_fields() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(dataset::handler(dirs(data.path())));
    let text = "He said \"stop\", then left.\nNext line";
    let extractions = json!([
        {"chunk_id": "a#0", "source": "a, b.md", "text": text, "categories": ["x", "y"]},
    ]);
    let result = ok(
        handler,
        json!({"format": "csv", "validation_fraction": 0.0, "extractions": extractions}),
        vec![],
    )
    .await;
    let train = std::fs::read_to_string(artifact_file(data.path(), &result["train"])).unwrap();
    assert_eq!(
        train,
        "text,categories,source,chunk_id\r\n\
         \"He said \"\"stop\"\", then left.\nNext line\",x;y,\"a, b.md\",a#0\r\n"
    );
    let validation =
        std::fs::read_to_string(artifact_file(data.path(), &result["validation"])).unwrap();
    assert_eq!(validation, "text,categories,source,chunk_id\r\n");
    assert_eq!(
        parse_csv(&train),
        [
            ["text", "categories", "source", "chunk_id"],
            [text, "x;y", "a, b.md", "a#0"],
        ]
    );
}
