//! `document_processing`: chunks within size with overlap and nothing
//! lost, directories walked in order, HTML reduced to text, inline
//! documents, and paths outside the documents root refused.

use std::path::Path;
use std::sync::Arc;

use jobd::pipeline::{Dirs, documents};
use serde_json::{Value, json};

use super::{artifact_entries, dirs, docs_root, ok, read_jsonl, run};

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
        let chunks = read_jsonl(data.path(), &result["artifact"]);
        assert_eq!(result["chunks"], chunks.len());
        assert!(chunks.iter().all(|c| c["source"] == file));
        assert_eq!(chunks[1]["chunk_id"], format!("{file}#1"));
        check_chunks(&source, &chunks, size);
        // Progress counts documents, not bytes.
        let progress = progress.unwrap();
        assert_eq!(progress.items_processed, Some(1));
        assert_eq!(progress.total_items, Some(1));
        assert_eq!(progress.fraction, 1.0);
    }
    // The Markdown splitter keeps headings with their sections' text: no
    // chunk ends with a heading line.
    let params = json!({"path": "topics.md", "chunk_size": 300, "chunk_overlap": 0});
    let chunks = read_jsonl(data.path(), &ok(handler, params, vec![]).await["artifact"]);
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
    let chunks = read_jsonl(data.path(), &result["artifact"]);
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
    let texts: Vec<(String, String)> = read_jsonl(data.path(), &result["artifact"])
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
    assert_eq!(
        read_jsonl(data.path(), &single["artifact"])[0]["chunk_id"],
        "x.txt#0"
    );

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
    let handler = Arc::new(documents::handler(
        Dirs::local(Some(root.path().to_path_buf()), data.path().to_path_buf()).unwrap(),
    ));
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

#[tokio::test]
async fn without_a_root_no_file_is_read_and_the_data_directory_never_is() {
    let data = tempfile::tempdir().unwrap();
    let handler = Arc::new(documents::handler(
        Dirs::local(None, data.path().to_path_buf()).unwrap(),
    ));
    for path in ["notes.txt", "/etc/passwd", "."] {
        let error = run(handler.clone(), json!({"path": path}), vec![])
            .await
            .0
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("reading files is off"),
            "{path}: {error:#}"
        );
    }

    // A root around the data directory (which the settings refuse at
    // start) still does not give the data directory away.
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("stored.txt"), "stored").unwrap();
    std::fs::write(root.path().join("fine.txt"), "fine").unwrap();
    let handler = Arc::new(documents::handler(
        Dirs::local(Some(root.path().to_path_buf()), data_dir).unwrap(),
    ));
    for path in ["data/stored.txt", "data", "."] {
        let error = run(handler.clone(), json!({"path": path}), vec![])
            .await
            .0
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("into the data directory"),
            "{path}: {error:#}"
        );
    }
    let fine = ok(
        handler,
        json!({"path": "fine.txt", "format": "markdown"}),
        vec![],
    )
    .await;
    assert_eq!(fine["chunks"], 1);
}
