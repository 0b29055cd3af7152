//! The document pipeline on a cluster: the README's layout on one Redis
//! (two API nodes with `--workers 0`, two `jobd worker` processes), each
//! process with a data directory of its own as on hosts of their own, so
//! the stages of a chain share nothing but the artifact store: a shared
//! directory, then an S3 bucket (moto). And the refusal of the pipeline's
//! job types on Redis when the artifact store is each machine's own.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::moto::Moto;
use crate::support::{Scratch, Server, StoreKind, wait_until};

/// Pipelines submitted per cluster, four jobs each.
const PIPELINES: usize = 20;
const STAGES: [&str; 4] = [
    "document_processing",
    "taxonomy_processing",
    "extraction",
    "dataset_generation",
];
/// How long a cluster may take to run all of them.
const DEADLINE: Duration = Duration::from_secs(120);

/// Two API nodes and two workers, each with its own data directory.
struct Cluster {
    nodes: [Server; 2],
    /// The workers (kept running) and the files their logs go to.
    workers: Vec<(Server, PathBuf)>,
    data_dirs: Vec<PathBuf>,
}

impl Cluster {
    /// Starts the four processes on the scratch's Redis, all with
    /// `--artifacts artifacts` and the environment `envs`.
    fn start(scratch: &Scratch, artifacts: &str, envs: &[(&str, &str)]) -> Cluster {
        let host = |name: &str| scratch.path().join("hosts").join(name).join("data");
        let args = |data_dir: &Path| scratch.redis_args_with(data_dir, Some(artifacts));
        let node = |name: &str| {
            Server::serve_on(&args(&host(name)), &["--workers".into(), "0".into()], envs)
        };
        let nodes = [node("api-1"), node("api-2")];
        let workers = ["worker-1", "worker-2"]
            .map(|name| {
                let log = scratch.path().join(format!("{name}.log"));
                let worker = Server::worker_logged(
                    &args(&host(name)),
                    &["--workers".into(), "2".into()],
                    envs,
                    &log,
                );
                (worker, log)
            })
            .into();
        let data_dirs = ["api-1", "api-2", "worker-1", "worker-2"].map(host).into();
        Cluster {
            nodes,
            workers,
            data_dirs,
        }
    }

    /// Submits the pipelines through the two nodes in turn and returns each
    /// one's four job ids, in stage order.
    async fn submit_pipelines(&self) -> Vec<[String; 4]> {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/docs/topics.md"),
        )
        .unwrap();
        let mut pipelines = Vec::new();
        for i in 0..PIPELINES {
            let node = &self.nodes[i % 2];
            let body = json!({"documents": [
                {"name": format!("topics-{i}.md"), "text": format!("Pipeline {i}.\n\n{text}")}
            ]});
            let (status, answer) = node.post("/api/v1/jobs/pipeline", Some(body)).await;
            assert_eq!(status, 201, "{answer}");
            pipelines.push(STAGES.map(|stage| answer["jobs"][stage].as_str().unwrap().to_owned()));
        }
        pipelines
    }

    /// Waits until every job completed, failing at once on a failed or
    /// cancelled one, then checks each job through the nodes in turn.
    async fn wait_all_completed(&self, pipelines: &[[String; 4]]) {
        let want = (pipelines.len() * STAGES.len()) as u64;
        wait_until("every job to complete", DEADLINE, || async {
            let stats = self.nodes[0].stats().await;
            assert_eq!(
                (&stats["failed_jobs"], &stats["cancelled_jobs"]),
                (&json!(0), &json!(0)),
                "{stats}"
            );
            (stats["completed_jobs"] == want).then_some(())
        })
        .await;
        for (i, id) in pipelines.iter().flatten().enumerate() {
            let job = self.nodes[i % 2].job(id).await;
            assert_eq!(job["status"], "completed", "{job}");
        }
    }

    /// Which worker (its index) ran each job, from the workers' logs.
    async fn runs(&self, jobs: usize) -> HashMap<String, usize> {
        wait_until("each job's `job finished` line", DEADLINE, || async {
            let mut ran_on = HashMap::new();
            for (index, (_, log)) in self.workers.iter().enumerate() {
                for id in finished_jobs(log) {
                    let before = ran_on.insert(id.clone(), index);
                    assert!(before.is_none(), "job {id} finished twice");
                }
            }
            (ran_on.len() == jobs).then_some(ran_on)
        })
        .await
    }

    /// Each dataset's `train.jsonl`, downloaded through both nodes: the
    /// same bytes, non-empty JSON Lines.
    async fn check_datasets(&self, pipelines: &[[String; 4]]) {
        for stages in pipelines {
            let id = &stages[3];
            let dataset = self.nodes[0].job(id).await;
            assert_eq!(dataset["result"]["train"], format!("{id}/train.jsonl"));
            let mut bodies = Vec::new();
            for node in &self.nodes {
                let response = node
                    .http
                    .get(node.at(&format!("/api/v1/jobs/status/{id}/artifacts/train.jsonl")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status(),
                    200,
                    "train.jsonl of {id} at {}",
                    node.url
                );
                bodies.push(response.text().await.unwrap());
            }
            assert_eq!(bodies[0], bodies[1], "both nodes serve the same file");
            let lines: Vec<&str> = bodies[0].lines().filter(|l| !l.is_empty()).collect();
            assert!(!lines.is_empty(), "train.jsonl of {id} is empty");
            for line in lines {
                let record: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}) in train.jsonl of {id}: {line}"));
                assert!(record.is_object(), "{line}");
            }
        }
    }

    /// No process kept an artifact in its own data directory.
    fn check_no_local_artifacts(&self) {
        for dir in &self.data_dirs {
            let local = files_under(&dir.join("artifacts"));
            assert!(local.is_empty(), "artifacts on one host only: {local:?}");
        }
    }
}

/// The ids of the jobs a worker's JSON log says it finished.
fn finished_jobs(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "job finished")
        .filter_map(|entry| entry["fields"]["job_id"].as_str().map(str::to_owned))
        .collect()
}

/// The files below `dir`, at any depth (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Runs the pipelines on `cluster` and checks that both workers took part
/// and that some chain moved between them, which only the shared
/// artifact store makes work.
async fn run_pipelines(cluster: &Cluster) -> Vec<[String; 4]> {
    let pipelines = cluster.submit_pipelines().await;
    cluster.wait_all_completed(&pipelines).await;
    let ran_on = cluster.runs(pipelines.len() * STAGES.len()).await;
    let per_worker: HashSet<usize> = ran_on.values().copied().collect();
    assert_eq!(per_worker.len(), 2, "both workers ran jobs: {ran_on:?}");
    let split = pipelines
        .iter()
        .filter(|stages| {
            stages
                .iter()
                .map(|id| ran_on[id])
                .collect::<HashSet<_>>()
                .len()
                > 1
        })
        .count();
    assert!(split > 0, "no pipeline's stages ran on both workers");
    cluster.check_datasets(&pipelines).await;
    cluster.check_no_local_artifacts();
    pipelines
}

#[tokio::test]
async fn a_cluster_runs_pipelines_over_a_shared_artifact_directory() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    let shared = scratch.path().join("shared-artifacts");
    let cluster = Cluster::start(&scratch, &shared.display().to_string(), &[]);
    let pipelines = run_pipelines(&cluster).await;
    for stages in &pipelines {
        let train = shared.join(&stages[3]).join("train.jsonl");
        assert!(
            train.is_file(),
            "{} is in the shared directory",
            train.display()
        );
    }
}

#[tokio::test]
async fn a_cluster_runs_pipelines_over_s3() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    let moto = Moto::start("jobd-artifacts").await;
    let artifacts = format!("s3://{}/cluster", moto.bucket);
    let cluster = Cluster::start(&scratch, &artifacts, &moto.env());
    let pipelines = run_pipelines(&cluster).await;
    for stages in &pipelines {
        let id = &stages[3];
        let keys = moto.keys(&format!("cluster/{id}/")).await;
        assert!(
            keys.contains(&format!("cluster/{id}/train.jsonl")),
            "train.jsonl of {id} is in the bucket: {keys:?}"
        );
    }
}

#[tokio::test]
async fn pipeline_jobs_are_refused_on_redis_without_a_shared_artifact_store() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    let args = scratch.redis_args_with(&scratch.path().join("data"), None);
    let server = Server::serve_on(&args, &[], &[]);
    let document = json!({"name": "a.md", "text": "# A\n\nSome text. More text."});
    let pipeline = server
        .post(
            "/api/v1/jobs/pipeline",
            Some(json!({"documents": [document]})),
        )
        .await;
    let single = server
        .post(
            "/api/v1/jobs",
            Some(json!({"job_type": "document_processing", "parameters": document})),
        )
        .await;
    for (status, error) in [pipeline, single] {
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["error"], "ValidationError", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("artifacts"), "{message}");
    }
    let (_, listed) = server.get("/api/v1/jobs?limit=10").await;
    assert_eq!(listed["jobs"], json!([]), "nothing was stored");
}
