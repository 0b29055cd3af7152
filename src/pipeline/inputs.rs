//! Where a pipeline step's input comes from: its job's parameters and
//! dependencies, files confined to the directories jobd may read, and the
//! chunk artifacts of `document_processing` jobs.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Dirs;
use super::documents::Chunk;
use super::params::array_param;
use super::task::Task;
use crate::model::{Job, JobId};
use crate::runtime::JobContext;

/// The job's id, parameters and dependencies, copied so a blocking thread
/// can own them.
pub(crate) struct Inputs {
    /// The job's id; it names the artifact directory.
    pub job_id: JobId,
    /// The job's parameters (a JSON object, or null).
    pub params: Value,
    /// The completed jobs this one depends on.
    pub dependencies: Vec<Arc<Job>>,
}

impl Inputs {
    /// A copy of what `ctx` says about the job.
    pub fn of(ctx: &JobContext) -> Inputs {
        Inputs {
            job_id: ctx.job().id,
            params: ctx.parameters().clone(),
            dependencies: ctx.dependencies().to_vec(),
        }
    }

    /// The results of the dependencies that carry `marker` (a key that
    /// identifies the kind of step that produced them), in dependency order.
    pub fn dependency_results(&self, marker: &str) -> Vec<&Value> {
        self.dependencies
            .iter()
            .filter_map(|job| job.result.as_ref())
            .filter(|result| result.get(marker).is_some())
            .collect()
    }
}

/// A path inside `root`, given absolute or relative to `root`: `(the
/// canonical path to read, the path relative to root to show)`. Refused when
/// it leaves `root`, lexically (`..`) or through a symbolic link.
pub(crate) fn resolve_within(root: &Path, requested: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let root = fs::canonicalize(root)
        .with_context(|| format!("the documents root {} is not accessible", root.display()))?;
    let candidate = if requested.is_absolute() {
        requested.to_path_buf()
    } else {
        root.join(requested)
    };
    let normal = normalize(&candidate);
    let Ok(relative) = normal.strip_prefix(&root).map(Path::to_path_buf) else {
        anyhow::bail!("path {} is outside the documents root", requested.display());
    };
    let canonical = fs::canonicalize(&normal).with_context(|| {
        format!(
            "cannot read {} under the documents root",
            requested.display()
        )
    })?;
    if !canonical.starts_with(&root) {
        anyhow::bail!(
            "path {} leads outside the documents root through a symbolic link",
            requested.display()
        );
    }
    Ok((canonical, relative))
}

/// `path` with `.` and `..` resolved lexically (no file system access).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// An artifact file named by a parameter or a dependency's result, checked
/// to lie inside the artifacts root or the documents root, so a job cannot
/// be made to read arbitrary files.
pub(crate) fn readable_artifact(dirs: &Dirs, path: &str) -> anyhow::Result<PathBuf> {
    let canonical =
        fs::canonicalize(path).with_context(|| format!("cannot read artifact {path}"))?;
    let allowed = [dirs.artifacts_root(), dirs.documents_root.clone()]
        .iter()
        .filter_map(|root| fs::canonicalize(root).ok())
        .any(|root| canonical.starts_with(root));
    if !allowed {
        anyhow::bail!("artifact {path} is outside the artifacts and documents directories");
    }
    Ok(canonical)
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
/// of parameter `chunks_artifacts`, then the inline parameter `chunks`
/// (strings, or objects with `text` and optional `chunk_id` and `source`).
/// An error when none of these is given.
pub(crate) fn load_chunks(task: &Task, inputs: &Inputs, dirs: &Dirs) -> anyhow::Result<Vec<Chunk>> {
    let mut chunks = Vec::new();
    let mut given = false;
    for result in inputs.dependency_results("documents") {
        let Some(path) = result.get("artifact").and_then(Value::as_str) else {
            continue;
        };
        given = true;
        let path = readable_artifact(dirs, path)?;
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
            let path = readable_artifact(dirs, path)?;
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
