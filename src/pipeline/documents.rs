//! `document_processing`: reads documents (files under the documents root,
//! or inline text) as plain text, Markdown or HTML, splits them into
//! overlapping chunks with `text-splitter` (Markdown-aware for Markdown), and
//! stores the chunks as the job's artifact `chunks.jsonl`.
//!
//! Parameters: exactly one of `path` (a file or directory under the
//! documents root), `text` (with optional `name`) or `documents` (a list of
//! `{"name", "text", "format"?}`); `format` (`text`, `markdown` or `html`;
//! by default from the name's extension); `chunk_size` (characters, default
//! 1000) and `chunk_overlap` (characters, default a tenth of the size, at
//! most 100). Result: `{artifact, chunks, documents, bytes, skipped_files}`.
//!
//! Chunk sizes count characters, and no chunk exceeds `chunk_size`. The
//! overlap is made of whole units of the level a chunk was cut at (as
//! text-splitter does it): chunks cut at words or sentences overlap by up
//! to `chunk_overlap` characters, chunks made of whole paragraphs or lines
//! longer than the overlap do not.
//!
//! Files are read only when the server has a documents root, and only the
//! document types (`.txt`, `.text`, `.md`, `.markdown`, `.html`, `.htm`,
//! `.xhtml`) that are not hidden: `format` chooses how such a file is read,
//! never whether another file is. What can be refused without the file
//! system (reading off, a path leaving the root, a hidden or non-document
//! name) is refused at submission ([`check`]).

use std::collections::BTreeSet;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};

use super::artifacts::{ArtifactDir, INPUT_FILE, reference};
use super::chunks::Chunk;
use super::dirs::Dirs;
use super::inputs::{Inputs, in_data_dir, relative_within, resolve_within};
use super::params::{array_param, str_param, usize_param};
use super::stage::Stage;
use super::task::Task;
use super::text::html_to_text;
use crate::model::{JobId, Progress};

/// Chunk size when the job does not give one, in characters.
pub const DEFAULT_CHUNK_SIZE: usize = 1000;
/// Largest overlap used by default, in characters.
pub const DEFAULT_CHUNK_OVERLAP: usize = 100;
/// Largest chunk size accepted.
const MAX_CHUNK_SIZE: usize = 1_000_000;
/// Size of the segments a long text is chunked in, in bytes (see [`segments`]).
const SEGMENT_BYTES: usize = 128 * 1024;
/// The artifact's file name.
pub const CHUNKS_FILE: &str = "chunks.jsonl";

/// How a document's bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text, split at blank lines, lines, sentences and words.
    Text,
    /// Markdown, split at headings, blocks and inline elements first.
    Markdown,
    /// HTML, reduced to its text, then split as plain text.
    Html,
}

impl Format {
    /// The format a file name's extension says, if it is one jobd reads.
    pub fn of_name(name: &str) -> Option<Format> {
        let extension = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" => Some(Format::Markdown),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            _ => None,
        }
    }

    /// The format a `format` parameter names.
    pub fn parse(name: &str) -> anyhow::Result<Format> {
        match name.to_ascii_lowercase().as_str() {
            "text" | "txt" | "plain" => Ok(Format::Text),
            "markdown" | "md" => Ok(Format::Markdown),
            "html" | "htm" => Ok(Format::Html),
            other => anyhow::bail!("unknown format '{other}': expected text, markdown or html"),
        }
    }
}

/// The document types read from files, for messages.
const DOCUMENT_TYPES: &str = ".txt, .md or .html";

/// The `document_processing` job type: reads under `dirs.documents_root`
/// and writes artifacts under `dirs.data_dir`.
pub fn handler(dirs: Dirs) -> Stage {
    Stage::new(dirs, process)
        .with_check(check)
        .with_input(take_inline_documents)
}

/// The parameter that marks a job whose inline documents were moved to
/// its input artifact: `{"artifact", "documents", "bytes"}`.
const INPUT_PARAM: &str = "input";

/// A document given inline, as the input artifact keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct InlineDocument {
    name: String,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
}

/// The input artifact: the inline documents of a submission.
#[derive(Debug, Serialize, Deserialize)]
struct InlineInput {
    documents: Vec<InlineDocument>,
}

/// The inline documents of `params` (`text` with its `name`, or
/// `documents`), named and checked; `None` when there are none.
fn inline_documents(params: &Value) -> anyhow::Result<Option<Vec<InlineDocument>>> {
    if let Some(text) = str_param(params, "text")? {
        let name = str_param(params, "name")?.unwrap_or("inline");
        return Ok(Some(vec![InlineDocument {
            name: name.to_owned(),
            text: text.to_owned(),
            format: None,
        }]));
    }
    let Some(list) = array_param(params, "documents")? else {
        return Ok(None);
    };
    if list.is_empty() {
        anyhow::bail!("documents must list at least one document");
    }
    let mut names = BTreeSet::new();
    let mut documents = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let text = item
            .get("text")
            .and_then(Value::as_str)
            .with_context(|| format!("documents[{i}] must be an object with a text field"))?;
        let name = match str_param(item, "name")? {
            Some(name) => name.to_owned(),
            None => format!("inline-{i}"),
        };
        if !names.insert(name.clone()) {
            anyhow::bail!("documents[{i}]: the name {name} is used twice");
        }
        let format = str_param(item, "format")?;
        if let Some(format) = format {
            Format::parse(format)?;
        }
        documents.push(InlineDocument {
            name,
            text: text.to_owned(),
            format: format.map(str::to_owned),
        });
    }
    Ok(Some(documents))
}

/// Moves a submission's inline documents out of its parameters, into the
/// input artifact's content: the job, its status, its events and the
/// listings then carry a short note instead of the documents.
fn take_inline_documents(
    job_id: JobId,
    mut params: Value,
) -> anyhow::Result<(Value, Option<Vec<u8>>)> {
    let Some(documents) = inline_documents(&params)? else {
        return Ok((params, None));
    };
    let note = json!({
        "artifact": reference(job_id, INPUT_FILE),
        "documents": documents.len(),
        "bytes": documents.iter().map(|d| d.text.len()).sum::<usize>(),
    });
    let content = serde_json::to_vec(&InlineInput { documents })?;
    if let Some(fields) = params.as_object_mut() {
        for field in ["text", "name", "documents"] {
            fields.remove(field);
        }
        fields.insert(INPUT_PARAM.to_owned(), note);
    }
    Ok((params, Some(content)))
}

/// What a submission's `path` can be refused for before the job runs:
/// reading files is off, the path leaves the documents root or is hidden,
/// or its name has an extension that is not a document type's.
fn check(params: &Value, dirs: &Dirs) -> anyhow::Result<()> {
    if params.get(INPUT_PARAM).is_some() {
        anyhow::bail!("parameter {INPUT_PARAM} is set by the server; give text or documents");
    }
    inline_documents(params)?;
    let Some(path) = str_param(params, "path")? else {
        return Ok(());
    };
    let root = documents_root(dirs)?;
    let relative = relative_within(root, Path::new(path))?;
    let name = display(&relative);
    if Path::new(&name).extension().is_some() && Format::of_name(&name).is_none() {
        anyhow::bail!(unsupported(&name));
    }
    Ok(())
}

/// The documents root, or the error that reading files is off.
fn documents_root(dirs: &Dirs) -> anyhow::Result<&Path> {
    dirs.documents_root.as_deref().context(
        "reading files is off: this server has no documents_root; send the text inline \
         (text or documents)",
    )
}

/// The message for a file that is not a document type.
fn unsupported(name: &str) -> String {
    format!(
        "{name}: unsupported file type (expected {DOCUMENT_TYPES}, whatever format says; \
         PDF is not supported)"
    )
}

/// Where a document's content is.
enum Body {
    File(PathBuf),
    Inline(String),
}

/// A document to chunk.
struct Document {
    source: String,
    format: Format,
    body: Body,
    /// Its size in bytes as given (the file's or the inline text's), the
    /// unit of progress.
    bytes: u64,
}

fn process(task: &Task, inputs: &Inputs, dirs: &Dirs) -> anyhow::Result<Value> {
    let params = &inputs.params;
    let chunk_size = usize_param(params, "chunk_size", DEFAULT_CHUNK_SIZE, 1..=MAX_CHUNK_SIZE)?;
    let default_overlap = DEFAULT_CHUNK_OVERLAP.min(chunk_size / 10);
    let overlap = usize_param(params, "chunk_overlap", default_overlap, 0..=MAX_CHUNK_SIZE)?;
    if overlap >= chunk_size {
        anyhow::bail!("chunk_overlap ({overlap}) must be smaller than chunk_size ({chunk_size})");
    }
    let config = || -> anyhow::Result<ChunkConfig<_>> {
        Ok(ChunkConfig::new(chunk_size).with_overlap(overlap)?)
    };
    let text_splitter = TextSplitter::new(config()?);
    let markdown_splitter = MarkdownSplitter::new(config()?);

    let (documents, skipped_files) = collect_documents(task, inputs, dirs)?;
    let document_count = documents.len();
    let total: u64 = documents.iter().map(|d| d.bytes).sum();
    let artifacts = ArtifactDir::create(&dirs.artifacts, inputs.job_id)
        .context("cannot create the artifact directory")?;
    let mut out = artifacts.jsonl(CHUNKS_FILE)?;
    let mut done = 0u64;
    let mut chunks = 0u64;
    // Progress counts documents; its fraction follows the bytes chunked,
    // so one large document still moves it.
    let report = |bytes_done: u64, documents_done: usize| {
        task.report(Progress {
            fraction: bytes_done as f64 / total.max(1) as f64,
            items_processed: Some(documents_done as u64),
            total_items: Some(document_count as u64),
        })
    };
    report(0, 0);
    for (number, document) in documents.into_iter().enumerate() {
        task.check()?;
        let raw = match document.body {
            Body::File(path) => {
                let bytes =
                    fs::read(&path).with_context(|| format!("cannot read {}", document.source))?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Body::Inline(text) => text,
        };
        let text = match document.format {
            Format::Html => html_to_text(&raw),
            Format::Text | Format::Markdown => raw,
        };
        let mut index = 0;
        for segment in segments(&text, SEGMENT_BYTES.max(8 * chunk_size)) {
            let part = &text[segment.clone()];
            let pieces: Box<dyn Iterator<Item = (usize, &str)>> = match document.format {
                Format::Markdown => Box::new(markdown_splitter.chunk_indices(part)),
                Format::Text | Format::Html => Box::new(text_splitter.chunk_indices(part)),
            };
            for (local, piece) in pieces {
                task.check()?;
                let offset = segment.start + local;
                out.write(&Chunk {
                    chunk_id: format!("{}#{index}", document.source),
                    source: document.source.clone(),
                    index,
                    offset,
                    text: piece.to_owned(),
                })?;
                index += 1;
                chunks += 1;
                let within = (offset + piece.len()) as u128 * u128::from(document.bytes)
                    / text.len().max(1) as u128;
                report(done + within.min(u128::from(document.bytes)) as u64, number);
            }
        }
        done += document.bytes;
        report(done, number + 1);
    }
    out.finish()?;
    let artifact = artifacts.reference(CHUNKS_FILE);
    artifacts.commit(task)?;
    Ok(json!({
        "artifact": artifact,
        "chunks": chunks,
        "documents": document_count,
        "bytes": total,
        "skipped_files": skipped_files,
    }))
}

/// Splits `text` into consecutive byte ranges of about `target` bytes (at
/// most twice that), each ending after a blank line where there is one,
/// else after a line break, else after a space, else at a character
/// boundary.
///
/// Why: text-splitter re-sorts the semantic ranges of all the remaining text
/// for every chunk, so one large text takes time quadratic in its size;
/// chunking bounded segments keeps it linear. Chunks do not span segment
/// boundaries, which are paragraph breaks in all but degenerate texts.
fn segments(text: &str, target: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while text.len() - start > 2 * target {
        let from = floor_char_boundary(text, start + target);
        let to = floor_char_boundary(text, start + 2 * target);
        let window = &text[from..to];
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|separator| window.find(separator).map(|at| at + separator.len()))
            .map_or(to, |at| from + at);
        out.push(start..cut);
        start = cut;
    }
    out.push(start..text.len());
    out
}

/// The largest character boundary of `text` at or below `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The documents the parameters name, and how many files of a directory
/// were skipped for an unsupported type.
fn collect_documents(
    task: &Task,
    inputs: &Inputs,
    dirs: &Dirs,
) -> anyhow::Result<(Vec<Document>, usize)> {
    let params = &inputs.params;
    let path = str_param(params, "path")?;
    let format = str_param(params, "format")?
        .map(Format::parse)
        .transpose()?;
    let input = params.get(INPUT_PARAM).filter(|v| !v.is_null());
    let inline = inline_documents(params)?;
    let given =
        usize::from(path.is_some()) + usize::from(input.is_some()) + usize::from(inline.is_some());
    if given != 1 {
        anyhow::bail!("give exactly one of the parameters path, text or documents");
    }
    if let Some(path) = path {
        return documents_at(task, dirs, Path::new(path), format);
    }
    let inline = match inline {
        Some(documents) => documents,
        None => {
            let file = inputs.own_artifact(task, dirs, INPUT_FILE)?;
            let content = fs::read(&file).context("cannot read the input artifact")?;
            serde_json::from_slice::<InlineInput>(&content)
                .context("the input artifact is not a list of documents")?
                .documents
        }
    };
    let mut documents = Vec::with_capacity(inline.len());
    for document in inline {
        let format = match document.format.as_deref() {
            Some(f) => Some(Format::parse(f)?),
            None => format,
        };
        documents.push(inline_document(&document.name, document.text, format));
    }
    Ok((documents, 0))
}

fn inline_document(name: &str, text: String, format: Option<Format>) -> Document {
    Document {
        source: name.to_owned(),
        format: format
            .or_else(|| Format::of_name(name))
            .unwrap_or(Format::Text),
        bytes: text.len() as u64,
        body: Body::Inline(text),
    }
}

/// The documents at `requested` under the documents root: the file itself,
/// or the supported files of the directory and its subdirectories in name
/// order. A file is read only when both its name and the name it leads to
/// (through a link) are a document type's; `format` only says how.
fn documents_at(
    task: &Task,
    dirs: &Dirs,
    requested: &Path,
    format: Option<Format>,
) -> anyhow::Result<(Vec<Document>, usize)> {
    let root = documents_root(dirs)?;
    let (canonical, relative) = resolve_within(root, &dirs.data_dir, requested)?;
    let metadata =
        fs::metadata(&canonical).with_context(|| format!("cannot read {}", requested.display()))?;
    if metadata.is_file() {
        let source = display(&relative);
        let target = canonical.to_string_lossy();
        let named = Format::of_name(&source).filter(|_| Format::of_name(&target).is_some());
        let Some(named) = named else {
            anyhow::bail!(unsupported(&source));
        };
        let document = Document {
            source,
            format: format.unwrap_or(named),
            body: Body::File(canonical),
            bytes: metadata.len(),
        };
        return Ok((vec![document], 0));
    }
    let root = fs::canonicalize(root)?;
    let mut walk = Walk {
        task,
        root: &root,
        data_dir: &dirs.data_dir,
        documents: Vec::new(),
        skipped: 0,
        visited: BTreeSet::new(),
    };
    walk.visited.insert(canonical.clone());
    walk.dir(&canonical, &relative)?;
    if walk.documents.is_empty() {
        anyhow::bail!(
            "no supported documents ({DOCUMENT_TYPES}) under {}",
            requested.display()
        );
    }
    Ok((walk.documents, walk.skipped))
}

/// A directory walk collecting documents, confined to the root.
struct Walk<'a> {
    task: &'a Task,
    root: &'a Path,
    /// Never read, even if a link leads there.
    data_dir: &'a Path,
    documents: Vec<Document>,
    skipped: usize,
    /// Directories seen, so a link back up cannot loop.
    visited: BTreeSet<PathBuf>,
}

impl Walk<'_> {
    /// Whether the file a name leads to (through links) is a document
    /// type's and not hidden, as the name itself must be.
    fn is_document(&self, canonical: &Path) -> bool {
        let within = canonical
            .strip_prefix(self.root)
            .is_ok_and(|target| relative_within(self.root, target).is_ok());
        within && Format::of_name(&canonical.to_string_lossy()).is_some()
    }

    fn dir(&mut self, dir: &Path, relative: &Path) -> anyhow::Result<()> {
        let mut entries = fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", display(relative)))?
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            self.task.check()?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                self.skipped += 1;
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let child = relative.join(name);
            let canonical = fs::canonicalize(entry.path())
                .with_context(|| format!("cannot read {}", display(&child)))?;
            if !canonical.starts_with(self.root) {
                anyhow::bail!(
                    "{} leads outside the documents root through a symbolic link",
                    display(&child)
                );
            }
            if in_data_dir(self.data_dir, &canonical) {
                anyhow::bail!("{} leads into the data directory", display(&child));
            }
            let metadata = fs::metadata(&canonical)?;
            if metadata.is_dir() {
                if self.visited.insert(canonical.clone()) {
                    self.dir(&canonical, &child)?;
                }
            } else if let Some(format) =
                Format::of_name(name).filter(|_| metadata.is_file() && self.is_document(&canonical))
            {
                self.documents.push(Document {
                    source: display(&child),
                    format,
                    body: Body::File(canonical),
                    bytes: metadata.len(),
                });
            } else {
                self.skipped += 1;
            }
        }
        Ok(())
    }
}

/// A relative path as a source name, with `/` separators.
fn display(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_text_and_end_at_paragraphs() {
        let text = "para one.\n\npara two is longer.\n\nthree\nfour five six";
        let parts = segments(text, 8);
        assert_eq!(parts.first().map(|r| r.start), Some(0));
        assert_eq!(parts.last().map(|r| r.end), Some(text.len()));
        for pair in parts.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(&text[parts[0].clone()], "para one.\n\n");
        let wide = "é".repeat(100);
        let parts = segments(&wide, 7);
        assert!(parts.iter().all(|r| wide.is_char_boundary(r.start)));
        assert_eq!(parts.iter().map(|r| r.len()).sum::<usize>(), wide.len());
        assert_eq!(segments("short", 100), vec![0..5]);
    }
}
