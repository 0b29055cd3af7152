//! Job artifacts: the files a pipeline job leaves for the jobs after it and
//! for its user, kept in the artifact store the setting `artifacts` names
//! (a directory, by default `DATA_DIR/artifacts`, or an S3-compatible
//! bucket; both through the `object_store` crate) as `<job_id>/<name>`.
//!
//! A step writes into a local staging directory ([`ArtifactDir`]) and
//! uploads its files only once its work has succeeded. Each upload is
//! atomic (a rename on a file system, one PUT or one completed multipart
//! upload on S3), so a reader never sees a partial file and a failed or
//! cancelled step leaves nothing. Artifacts go with their job at retention
//! ([`sweep`]).

mod staging;
mod sweep;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::config::{ArtifactLocation, Settings, StoreConfig};
use crate::model::JobId;
use crate::pipeline::task::Task;

pub(crate) use staging::ArtifactDir;
pub(crate) use sweep::spawn_sweeper;

/// The file a submission's inline documents are kept in, as the first
/// stage's input artifact.
pub(crate) const INPUT_FILE: &str = "input.json";

/// An artifact as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ArtifactInfo {
    /// Its file name, unique within the job.
    pub name: String,
    /// Its size in bytes.
    #[schema(format = "uint64")]
    pub size: u64,
    /// Its media type, from the name's extension.
    pub media_type: &'static str,
}

/// The artifact store: where artifacts are kept, and a scratch directory
/// for the files a step reads and writes locally. Cheap to clone.
#[derive(Clone)]
pub struct ArtifactStore {
    objects: Arc<dyn ObjectStore>,
    scratch: PathBuf,
    /// The directory, for a store in one: what it writes is synced to disk
    /// (the object store renames files into place but does not sync them).
    directory: Option<PathBuf>,
    /// The setting as given, for messages.
    described: String,
    /// Whether every node of the deployment reaches the same artifacts:
    /// false for the default directory of a store shared by machines.
    shared: bool,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("artifacts", &self.described)
            .field("shared", &self.shared)
            .finish()
    }
}

impl ArtifactStore {
    /// The store the settings name; its directory is created if missing.
    /// An S3 bucket takes its credentials, region and endpoint from the
    /// `AWS_*` environment variables (`AWS_ENDPOINT_URL` and
    /// `AWS_ALLOW_HTTP=true` for a local S3-compatible server).
    pub fn open(settings: &Settings) -> anyhow::Result<ArtifactStore> {
        let scratch = settings.data_dir.join("scratch");
        match &settings.artifacts {
            ArtifactLocation::Default => {
                let mut store =
                    ArtifactStore::in_directory(&settings.data_dir.join("artifacts"), scratch)?;
                // One machine's disk: the other machines of a Redis
                // deployment cannot read it.
                store.shared = settings.store == StoreConfig::Sqlite;
                Ok(store)
            }
            ArtifactLocation::Directory(dir) => ArtifactStore::in_directory(dir, scratch),
            ArtifactLocation::S3(url) => {
                let (bucket_url, prefix) = split_s3_url(url)?;
                let bucket = AmazonS3Builder::from_env()
                    .with_url(bucket_url)
                    .build()
                    .with_context(|| format!("artifacts = {url}"))?;
                let objects: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(bucket)
                } else {
                    Arc::new(PrefixStore::new(bucket, prefix))
                };
                Ok(ArtifactStore {
                    objects,
                    scratch,
                    directory: None,
                    described: url.clone(),
                    shared: true,
                })
            }
        }
    }

    /// Artifacts as files under `dir`, staged under `scratch`.
    pub fn in_directory(dir: &Path, scratch: PathBuf) -> anyhow::Result<ArtifactStore> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the artifacts directory {}", dir.display()))?;
        let local = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("artifacts = {}", dir.display()))?
            .with_automatic_cleanup(true);
        Ok(ArtifactStore {
            objects: Arc::new(local),
            scratch,
            directory: Some(dir.to_path_buf()),
            described: dir.display().to_string(),
            shared: true,
        })
    }

    /// A new temporary directory in the scratch directory (created if
    /// missing), deleted when dropped.
    pub(crate) fn scratch_dir(&self, prefix: &str) -> std::io::Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.scratch)?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.scratch)
    }

    /// An error saying why the pipeline cannot run here, when the stages of
    /// a chain may run on machines that do not share this store.
    pub(crate) fn check_shared(&self) -> anyhow::Result<()> {
        if self.shared {
            return Ok(());
        }
        anyhow::bail!(
            "the pipeline needs an artifact store every node reaches: on Redis, set artifacts \
             (--artifacts, JOBD_ARTIFACTS) to a directory all nodes share or to an s3:// URL; \
             the default {} is this machine's alone",
            self.described
        )
    }

    /// A job's artifacts, by name.
    pub(crate) async fn list(&self, job_id: JobId) -> object_store::Result<Vec<ArtifactInfo>> {
        let prefix = ObjectPath::from(job_id.to_string());
        let mut listed: Vec<ArtifactInfo> = self
            .objects
            .list(Some(&prefix))
            .try_filter_map(|meta| async move {
                Ok(artifact_name(&meta).map(|name| ArtifactInfo {
                    media_type: media_type(&name),
                    name,
                    size: meta.size,
                }))
            })
            .try_collect()
            .await?;
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// One artifact (a byte range of it, when `range` is given) as a stream.
    pub(crate) async fn get(
        &self,
        job_id: JobId,
        name: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> object_store::Result<GetResult> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        self.objects.get_opts(&key(job_id, name), options).await
    }

    /// An artifact's size and time of writing.
    pub(crate) async fn head(&self, job_id: JobId, name: &str) -> object_store::Result<ObjectMeta> {
        self.objects.head(&key(job_id, name)).await
    }

    /// Stores `bytes` as the artifact `name` of `job_id`, replacing any.
    pub(crate) async fn put(
        &self,
        job_id: JobId,
        name: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        self.objects.put(&key(job_id, name), bytes.into()).await?;
        Ok(self.sync(job_id, name).await?)
    }

    /// Deletes the artifact `name` of `job_id`; gone already is no error.
    async fn remove(&self, job_id: JobId, name: &str) -> object_store::Result<()> {
        self.delete(&key(job_id, name)).await
    }

    /// Deletes the object at `location`; gone already is no error.
    async fn delete(&self, location: &ObjectPath) -> object_store::Result<()> {
        match self.objects.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Uploads the local file `from` as the artifact `name` of `job_id`
    /// (in parts when it is large), replacing any.
    async fn upload(&self, job_id: JobId, name: &str, from: &Path) -> anyhow::Result<()> {
        let mut file = tokio::fs::File::open(from).await?;
        let mut writer = BufWriter::new(self.objects.clone(), key(job_id, name));
        if let Err(e) = tokio::io::copy(&mut file, &mut writer).await {
            let _ = writer.abort().await;
            return Err(e).with_context(|| format!("cannot upload the artifact {name}"));
        }
        writer
            .shutdown()
            .await
            .with_context(|| format!("cannot upload the artifact {name}"))?;
        self.sync(job_id, name)
            .await
            .with_context(|| format!("cannot sync the artifact {name}"))
    }

    /// In a directory store, syncs the artifact `name` of `job_id` and its
    /// directory to disk, so an acknowledged job's input and a completed
    /// job's output survive a power loss as the job does (SQLite with
    /// `synchronous = full`). A bucket's PUT is durable when it answers.
    async fn sync(&self, job_id: JobId, name: &str) -> std::io::Result<()> {
        let Some(directory) = &self.directory else {
            return Ok(());
        };
        let job_dir = directory.join(job_id.to_string());
        let file = job_dir.join(name);
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(file)?.sync_all()?;
            std::fs::File::open(job_dir)?.sync_all()
        })
        .await?
    }

    /// Copies the artifact `name` of `job_id` into the local file `to`.
    async fn download(&self, job_id: JobId, name: &str, to: &Path) -> anyhow::Result<()> {
        let mut stream = self.objects.get(&key(job_id, name)).await?.into_stream();
        let mut file = tokio::fs::File::create(to).await?;
        while let Some(bytes) = stream.next().await {
            file.write_all(&bytes?).await?;
        }
        file.flush().await?;
        Ok(())
    }

    /// Runs `future` to its end from a blocking thread (a pipeline step's
    /// work), where the store's async calls cannot be awaited.
    fn block_on<F: std::future::Future>(&self, future: F) -> anyhow::Result<F::Output> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("artifact I/O needs the runtime of the worker")?;
        Ok(runtime.block_on(future))
    }

    /// From a step's blocking thread: copies the artifact `name` of
    /// `job_id` into the local file `to`, unless the job is cancelled first.
    pub(crate) fn fetch(
        &self,
        task: &Task,
        job_id: JobId,
        name: &str,
        to: &Path,
    ) -> anyhow::Result<()> {
        self.block_on(async {
            tokio::select! {
                copied = self.download(job_id, name, to) => copied.with_context(|| {
                    format!("cannot read the artifact {}", reference(job_id, name))
                }),
                () = task.cancelled() => anyhow::bail!("cancelled"),
            }
        })?
    }
}

/// How results name an artifact: `<job_id>/<name>`.
pub(crate) fn reference(job_id: JobId, name: &str) -> String {
    format!("{job_id}/{name}")
}

/// The job and name of a `<job_id>/<name>` reference, if it is one.
pub(crate) fn parse_reference(text: &str) -> Option<(JobId, &str)> {
    let (job, name) = text.split_once('/')?;
    let job_id = JobId::parse_str(job).ok()?;
    valid_name(name).then_some((job_id, name))
}

/// Whether `name` can name an artifact: a plain file name, not hidden.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Where the artifact `name` of `job_id` is in the object store.
fn key(job_id: JobId, name: &str) -> ObjectPath {
    ObjectPath::from_iter([job_id.to_string(), name.to_owned()])
}

/// The artifact name of a listed object: the part after `<job_id>/`.
fn artifact_name(meta: &ObjectMeta) -> Option<String> {
    let mut parts = meta.location.parts();
    let _job = parts.next()?;
    let name = parts.next()?;
    parts.next().is_none().then(|| name.as_ref().to_owned())
}

/// The media type of an artifact, from its extension.
pub(crate) fn media_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("json") => "application/json",
        Some("jsonl") => "application/jsonl",
        Some("csv") => "text/csv",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// `s3://BUCKET/PREFIX` as the bucket's URL and the key prefix.
fn split_s3_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.strip_prefix("s3://").unwrap_or(url);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        anyhow::bail!("artifacts = {url}: the URL names no bucket (s3://BUCKET/PREFIX)");
    }
    Ok((
        format!("s3://{bucket}"),
        prefix.trim_matches('/').to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_job_and_a_plain_file() {
        let job = uuid::Uuid::now_v7();
        let text = reference(job, "chunks.jsonl");
        assert_eq!(parse_reference(&text), Some((job, "chunks.jsonl")));
        for bad in [
            "chunks.jsonl".to_owned(),
            format!("{job}/"),
            format!("{job}/.env"),
            format!("{job}/a/b"),
            format!("{job}/..\\x"),
            "not-a-job/x.json".to_owned(),
        ] {
            assert_eq!(parse_reference(&bad), None, "{bad}");
        }
    }

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            split_s3_url("s3://bucket/a/b/").unwrap(),
            ("s3://bucket".to_owned(), "a/b".to_owned())
        );
        assert_eq!(
            split_s3_url("s3://bucket").unwrap(),
            ("s3://bucket".to_owned(), String::new())
        );
        assert!(split_s3_url("s3:///x").is_err());
    }
}
