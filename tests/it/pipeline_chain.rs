//! The document pipeline through the API and the CLI: a chain of four
//! dependent jobs, its failure and restart, and its artifacts' retention.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind, cli, cli_in, wait_until};

const STAGES: [&str; 4] = [
    "document_processing",
    "taxonomy_processing",
    "extraction",
    "dataset_generation",
];

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/docs/topics.md")
}

fn stage_ids(answer: &Value) -> Vec<String> {
    STAGES
        .iter()
        .map(|stage| answer["jobs"][stage].as_str().unwrap().to_owned())
        .collect()
}

async fn pipeline_chain_runs_fails_and_restarts(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    // A documents root beside the data directory, never around it.
    let documents = scratch.path().join("docs");
    std::fs::create_dir(&documents).unwrap();
    let server = Server::serve(
        &scratch,
        &["--documents-root".into(), documents.display().to_string()],
    );
    let text = std::fs::read_to_string(sample()).unwrap();

    // The whole chain from inline text.
    let (status, answer) = server
        .post(
            "/api/v1/jobs/pipeline",
            Some(json!({"documents": [{"name": "topics.md", "text": text}]})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let ids = stage_ids(&answer);
    for id in &ids {
        server
            .wait_for_status(id, "completed", Duration::from_secs(60))
            .await;
    }
    let dataset = server.job(&ids[3]).await;
    let train = dataset["result"]["train"].as_str().unwrap();
    let (status, _) = server
        .get(&format!(
            "/api/v1/jobs/status/{}/artifacts/train.jsonl",
            ids[3]
        ))
        .await;
    assert_eq!(status, 200, "dataset file {train} is served");
    assert!(
        dataset["result"]["records"].as_u64().unwrap() > 0,
        "{dataset}"
    );

    // A first stage that fails cancels the rest, naming it...
    let (status, answer) = server
        .post("/api/v1/jobs/pipeline", Some(json!({"path": "missing.md"})))
        .await;
    assert_eq!(status, 201, "{answer}");
    let ids = stage_ids(&answer);
    server
        .wait_for_status(&ids[0], "failed", Duration::from_secs(30))
        .await;
    for id in &ids[1..] {
        let job = server
            .wait_for_status(id, "cancelled", Duration::from_secs(30))
            .await;
        assert!(
            job["error"].as_str().unwrap().contains("dependency"),
            "{job}"
        );
    }
    // ...and restarting it with fixed parameters lets the chain complete.
    let (status, _) = server
        .post(
            &format!("/api/v1/jobs/restart/{}", ids[0]),
            Some(json!({"parameters": {"documents": [{"name": "topics.md", "text": text}]}})),
        )
        .await;
    assert_eq!(status, 200);
    for id in &ids {
        server
            .wait_for_status(id, "completed", Duration::from_secs(60))
            .await;
    }
}

/// The pipeline's four jobs are stored all or none: when a later stage
/// cannot be submitted (here its job type's configured time limit is over
/// the API's maximum), the client's error leaves no earlier stage behind.
#[tokio::test]
async fn a_pipeline_that_cannot_be_submitted_whole_leaves_no_job() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("sqlite scratch");
    let config = scratch.write(
        "jobd.toml",
        "[job_types.dataset_generation]\ntimeout_seconds = 1000000\n",
    );
    let server = Server::serve(
        &scratch,
        &[
            "--workers".into(),
            "0".into(),
            "--config".into(),
            config.display().to_string(),
        ],
    );
    let (status, error) = server
        .post(
            "/api/v1/jobs/pipeline",
            Some(json!({"documents": [{"name": "a.md", "text": "# A\n\nSome text."}]})),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    let (_, listed) = server.get("/api/v1/jobs?limit=10").await;
    assert_eq!(listed["jobs"], json!([]), "no stage was left behind");
}

async fn artifacts_go_with_their_jobs(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(
        &scratch,
        &[
            "--completed-retention-seconds".into(),
            "1".into(),
            "--cleanup-interval-seconds".into(),
            "1".into(),
        ],
    );
    let id = server
        .submit(json!({"job_type": "document_processing", "parameters": {"text": "One sentence. Another sentence.", "name": "t.txt"}}))
        .await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = server
        .wait_for_status(&id, "completed", Duration::from_secs(30))
        .await;
    let artifacts = match kind {
        StoreKind::Sqlite => scratch.path().join("data/artifacts"),
        StoreKind::Redis => scratch.path().join("artifacts"),
    };
    let artifact = artifacts.join(job["result"]["artifact"].as_str().unwrap());
    assert!(artifact.exists(), "{}", artifact.display());
    let input = artifacts.join(&id).join("input.json");
    assert!(
        input.exists(),
        "the inline text is the job's input artifact"
    );
    wait_until(
        "the job and its artifacts to be cleaned up",
        Duration::from_secs(30),
        || async {
            let (status, _) = server.get(&format!("/api/v1/jobs/status/{id}")).await;
            (status == 404 && !artifact.exists() && !input.exists()).then_some(())
        },
    )
    .await;
}

async fn the_cli_runs_the_pipeline_on_a_file(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let url = server.url.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&url, &["pipeline", sample().to_str().unwrap()]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dataset ready"), "{out}");
    assert!(out.contains("\"train\""), "{out}");
    let download = out
        .lines()
        .find(|line| line.ends_with("/artifacts/train.jsonl"))
        .unwrap_or_else(|| panic!("no download URL in {out}"));
    let answer = server.http.get(download).send().await.unwrap();
    assert_eq!(answer.status(), 200, "{download}");
}

/// `jobd pipeline --out DIR` fetches the dataset over HTTP alone: the
/// client runs in a directory of its own, told nothing of the server's data
/// or artifact directories, and its files are the server's, byte for byte.
async fn the_cli_downloads_the_dataset_it_cannot_see(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let client_dir = tempfile::tempdir().unwrap();
    std::fs::copy(sample(), client_dir.path().join("topics.md")).unwrap();
    let (url, cwd) = (server.url.clone(), client_dir.path().to_owned());
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli_in(
            &cwd,
            &url,
            &["pipeline", "topics.md", "--out", "dataset/run-1"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let out_dir = client_dir.path().join("dataset/run-1");
    assert!(out.contains("dataset/run-1/train.jsonl"), "{out}");

    let (_, listed) = server
        .get("/api/v1/jobs?job_type=dataset_generation&limit=1")
        .await;
    let id = listed["jobs"][0]["job_id"].as_str().unwrap();
    let (status, artifacts) = server
        .get(&format!("/api/v1/jobs/status/{id}/artifacts"))
        .await;
    assert_eq!(status, 200, "{artifacts}");
    let mut served = Vec::new();
    for artifact in artifacts["artifacts"].as_array().unwrap() {
        let name = artifact["name"].as_str().unwrap().to_owned();
        let url = format!("{}{}", server.url, artifact["url"].as_str().unwrap());
        let bytes = server.http.get(url).send().await.unwrap();
        assert_eq!(bytes.status(), 200);
        served.push((name, bytes.bytes().await.unwrap().to_vec()));
    }
    served.sort();
    let mut saved: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect();
    saved.sort();
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&saved),
        names(&served),
        "every artifact, no partial file"
    );
    assert!(saved == served, "the files are the server's, byte for byte");

    let train = &saved.iter().find(|f| f.0 == "train.jsonl").unwrap().1;
    let lines: Vec<Value> = std::str::from_utf8(train)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        !lines.is_empty() && lines.iter().all(Value::is_object),
        "{lines:?}"
    );
}

crate::for_each_store!(
    pipeline_chain_runs_fails_and_restarts,
    artifacts_go_with_their_jobs,
    the_cli_runs_the_pipeline_on_a_file,
    the_cli_downloads_the_dataset_it_cannot_see,
);
