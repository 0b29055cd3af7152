//! Where a pipeline step's input comes from: its job's parameters and
//! dependencies, and files confined to the directories jobd may read.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;

use super::artifacts::parse_reference;
use super::dirs::Dirs;
use super::task::Task;
use crate::model::{Job, JobId};
use crate::runtime::JobContext;

/// The job's id, owner, parameters and dependencies, copied so a blocking
/// thread can own them.
pub(crate) struct Inputs {
    /// The job's id; it names the artifact directory.
    pub job_id: JobId,
    /// The job's parameters (a JSON object, or null).
    pub params: Value,
    /// The completed jobs this one depends on, all of the job's own user.
    pub dependencies: Vec<Arc<Job>>,
    /// Where artifacts read by this attempt are copied; deleted with it.
    downloads: tempfile::TempDir,
}

impl Inputs {
    /// A copy of what `ctx` says about the job, with a download directory
    /// under `dirs`' scratch directory; an error when it depends on another
    /// user's job, whose results and artifacts it must not read.
    pub(crate) fn of(ctx: &JobContext, dirs: &Dirs) -> anyhow::Result<Inputs> {
        let job = ctx.job();
        if let Some(other) = ctx
            .dependencies()
            .iter()
            .find(|dependency| dependency.user_id != job.user_id)
        {
            anyhow::bail!(
                "dependency {} belongs to another user: a step reads only its own user's jobs",
                other.id
            );
        }
        Ok(Inputs {
            job_id: job.id,
            params: ctx.parameters().clone(),
            dependencies: ctx.dependencies().to_vec(),
            downloads: dirs.artifacts.scratch_dir(&format!("in-{}-", job.id))?,
        })
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

    /// The artifact a parameter or a dependency's result names
    /// (`<job_id>/<name>`), copied to a local file to read: a step reads
    /// its own user's dependencies' artifacts and nothing else.
    pub(crate) fn dependency_artifact(
        &self,
        task: &Task,
        dirs: &Dirs,
        named: &str,
    ) -> anyhow::Result<PathBuf> {
        let (job_id, name) = parse_reference(named)
            .filter(|(id, _)| self.dependencies.iter().any(|job| job.id == *id))
            .ok_or_else(|| {
                anyhow::anyhow!("artifact {named} is not an artifact of a job this one depends on")
            })?;
        self.fetch(task, dirs, job_id, name)
    }

    /// The job's own artifact `name` (its input), copied to a local file.
    pub(crate) fn own_artifact(
        &self,
        task: &Task,
        dirs: &Dirs,
        name: &str,
    ) -> anyhow::Result<PathBuf> {
        self.fetch(task, dirs, self.job_id, name)
    }

    /// Copies an artifact into this attempt's download directory.
    fn fetch(
        &self,
        task: &Task,
        dirs: &Dirs,
        job_id: JobId,
        name: &str,
    ) -> anyhow::Result<PathBuf> {
        let local = self.downloads.path().join(format!("{job_id}-{name}"));
        dirs.artifacts.fetch(task, job_id, name, &local)?;
        Ok(local)
    }
}

/// `requested` relative to `root` after `.` and `..` are resolved
/// lexically (no file system access, so it can run at submission): refused
/// when it leaves `root` or names a hidden file or directory (`.env`,
/// `.git`), which a directory walk skips as well.
pub(crate) fn relative_within(root: &Path, requested: &Path) -> anyhow::Result<PathBuf> {
    let candidate = if requested.is_absolute() {
        requested.to_path_buf()
    } else {
        root.join(requested)
    };
    let Ok(relative) = normalize(&candidate)
        .strip_prefix(root)
        .map(Path::to_path_buf)
    else {
        anyhow::bail!("path {} is outside the documents root", requested.display());
    };
    if relative
        .components()
        .any(|part| part.as_os_str().to_string_lossy().starts_with('.'))
    {
        anyhow::bail!(
            "path {}: hidden files and directories are not read",
            requested.display()
        );
    }
    Ok(relative)
}

/// A path inside `root` (canonical), given absolute or relative to `root`:
/// `(the canonical path to read, the path relative to root to show)`.
/// Refused when it leaves `root` (lexically or through a symbolic link),
/// names or leads to a hidden entry, or leads into the data directory.
pub(crate) fn resolve_within(
    root: &Path,
    data_dir: &Path,
    requested: &Path,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let root = fs::canonicalize(root)
        .with_context(|| format!("the documents root {} is not accessible", root.display()))?;
    let relative = relative_within(&root, requested)?;
    let canonical = fs::canonicalize(root.join(&relative)).with_context(|| {
        format!(
            "cannot read {} under the documents root",
            requested.display()
        )
    })?;
    let Ok(target) = canonical.strip_prefix(&root) else {
        anyhow::bail!(
            "path {} leads outside the documents root through a symbolic link",
            requested.display()
        );
    };
    relative_within(&root, target).with_context(|| {
        format!(
            "path {} leads to a hidden entry through a symbolic link",
            requested.display()
        )
    })?;
    if in_data_dir(data_dir, &canonical) {
        anyhow::bail!("path {} leads into the data directory", requested.display());
    }
    Ok((canonical, relative))
}

/// Whether the canonical `path` lies in the data directory (which the
/// settings keep out of the documents root; checked again in case a link
/// leads there).
pub(crate) fn in_data_dir(data_dir: &Path, path: &Path) -> bool {
    fs::canonicalize(data_dir).is_ok_and(|data| path.starts_with(data))
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
