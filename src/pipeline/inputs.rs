//! Where a pipeline step's input comes from: its job's parameters and
//! dependencies, and files confined to the directories jobd may read.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use super::dirs::Dirs;
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
    pub(crate) fn of(ctx: &JobContext) -> Inputs {
        Inputs {
            job_id: ctx.job().id,
            params: ctx.parameters().clone(),
            dependencies: ctx.dependencies().to_vec(),
        }
    }

    /// The results of the dependencies that carry `marker` (a key that
    /// identifies the kind of step that produced them), in dependency order.
    pub(crate) fn dependency_results(&self, marker: &str) -> Vec<&Value> {
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
