//! Chunks, the unit the pipeline steps after `document_processing` work
//! on: the record of its `chunks.jsonl` artifact, and how a step reads the
//! chunks it is given (artifacts of dependencies or parameters, or inline).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dirs::Dirs;
use super::inputs::Inputs;
use super::params::array_param;
use super::task::Task;

/// One chunk of a document: a line of the `chunks.jsonl` artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Unique within the job: `<source>#<index>`.
    pub chunk_id: String,
    /// The document: its path relative to the documents root, or its name.
    pub source: String,
    /// Position of the chunk in its document, from 0.
    #[serde(default)]
    pub index: usize,
    /// Byte offset of the chunk in the document's text (for HTML, the text
    /// after tags are removed), so readers can locate it.
    #[serde(default)]
    pub offset: usize,
    /// The chunk's text, trimmed of surrounding whitespace.
    pub text: String,
}

/// Reads a JSON Lines file, calling `each` with every non-blank line
/// decoded, checking for cancellation between lines.
pub(crate) fn read_jsonl<T: DeserializeOwned>(
    task: &Task,
    path: &Path,
    mut each: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    for (number, line) in BufReader::new(file).lines().enumerate() {
        task.check()?;
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).with_context(|| {
            format!("{} line {}: not a valid record", path.display(), number + 1)
        })?;
        each(record)?;
    }
    Ok(())
}

/// The chunks a step works on, in order: those of `document_processing`
/// dependencies (a result with `artifact` and `documents`), then the files
/// of parameter `chunks_artifacts` (each an artifact of a job this one
/// depends on: see [`Inputs::dependency_artifact`]), then the inline
/// parameter `chunks` (strings, or objects with `text` and optional
/// `chunk_id` and `source`). An error when none of these is given.
pub(crate) fn load_chunks(task: &Task, inputs: &Inputs, dirs: &Dirs) -> anyhow::Result<Vec<Chunk>> {
    let mut chunks = Vec::new();
    let mut given = false;
    for result in inputs.dependency_results("documents") {
        let Some(path) = result.get("artifact").and_then(Value::as_str) else {
            continue;
        };
        given = true;
        let path = inputs.dependency_artifact(task, dirs, path)?;
        read_jsonl(task, &path, |chunk: Chunk| {
            chunks.push(chunk);
            Ok(())
        })?;
    }
    if let Some(paths) = array_param(&inputs.params, "chunks_artifacts")? {
        given = true;
        for path in paths {
            let Some(path) = path.as_str() else {
                anyhow::bail!("parameter chunks_artifacts must list file paths, got {path}");
            };
            let path = inputs.dependency_artifact(task, dirs, path)?;
            read_jsonl(task, &path, |chunk: Chunk| {
                chunks.push(chunk);
                Ok(())
            })?;
        }
    }
    if let Some(items) = array_param(&inputs.params, "chunks")? {
        given = true;
        for (index, item) in items.iter().enumerate() {
            task.check()?;
            chunks.push(inline_chunk(index, item)?);
        }
    }
    if !given {
        anyhow::bail!(
            "no chunks given: depend on a document_processing job, or pass chunks_artifacts or chunks"
        );
    }
    Ok(chunks)
}

/// An inline chunk: a string, or an object with `text`.
fn inline_chunk(index: usize, item: &Value) -> anyhow::Result<Chunk> {
    let field = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
    let text = match item {
        Value::String(text) => text.clone(),
        _ => field("text").with_context(|| {
            format!("chunks[{index}] must be a string or an object with a text field")
        })?,
    };
    Ok(Chunk {
        chunk_id: field("chunk_id").unwrap_or_else(|| format!("inline#{index}")),
        source: field("source").unwrap_or_else(|| "inline".to_owned()),
        index,
        offset: 0,
        text,
    })
}
