//! What the document pipeline may read, through a real `jobd serve`:
//! files only under a documents root set on purpose (none by default), of
//! the document types only whatever `format` says, never hidden ones nor
//! the data directory; and a stage reads only the artifacts of the jobs it
//! depends on, which are its own user's (on both stores).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::for_each_store;
use crate::support::{Scratch, Server, StoreKind, jobd_bin};

const SECRET: &str = "hunter2sesame";
const WAIT: Duration = Duration::from_secs(60);

/// A documents root beside (not around) the scratch's data directory: a
/// note, a `.env` and a key file holding [`SECRET`], and a `.txt` link to
/// the `.env`.
fn documents(scratch: &Scratch) -> std::path::PathBuf {
    let root = scratch.path().join("docs");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("notes.txt"), "Telescopes watch the stars.\n").unwrap();
    std::fs::write(root.join(".env"), format!("PASSWORD={SECRET}\n")).unwrap();
    std::fs::write(root.join("secret.key"), format!("{SECRET}\n")).unwrap();
    std::fs::write(root.join("keyfile"), format!("{SECRET}\n")).unwrap();
    std::os::unix::fs::symlink(root.join(".env"), root.join("env.txt")).unwrap();
    root
}

/// Submits a `document_processing` job with `parameters`.
async fn submit_documents(server: &Server, parameters: Value) -> (u16, Value) {
    server
        .post(
            "/api/v1/jobs",
            Some(json!({"job_type": "document_processing", "parameters": parameters})),
        )
        .await
}

/// Asserts a 400 `ValidationError` whose message contains `message`.
fn assert_refused(answer: &(u16, Value), message: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 400, "{what}: {body}");
    assert_eq!(body["error"], "ValidationError", "{what}: {body}");
    let text = body["message"].as_str().unwrap_or_default();
    assert!(text.contains(message), "{what}: {body}");
    assert!(!text.contains(SECRET), "{what}: {body}");
}

#[tokio::test]
async fn without_a_documents_root_no_file_is_read() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("sqlite scratch");
    documents(&scratch);
    let server = Server::serve(&scratch, &[]);
    // The server runs from the repository: README.md, Cargo.toml and any
    // .env there are all off limits, as is the rest of the machine.
    for parameters in [
        json!({"path": "README.md"}),
        json!({"path": ".env", "format": "text"}),
        json!({"path": "/etc/passwd", "format": "text"}),
        json!({"path": "."}),
        json!({"path": scratch.path().join("docs/notes.txt")}),
    ] {
        let answer = submit_documents(&server, parameters.clone()).await;
        assert_refused(&answer, "reading files is off", &parameters.to_string());
    }
    let answer = server
        .post(
            "/api/v1/jobs/pipeline",
            Some(json!({"path": "/etc/passwd"})),
        )
        .await;
    assert_refused(&answer, "reading files is off", "pipeline /etc/passwd");
    // Inline text still works, from the API and from `jobd pipeline`'s way.
    let (status, job) = submit_documents(&server, json!({"text": "Stars.", "name": "a.md"})).await;
    assert_eq!(status, 201, "{job}");
    let id = job["job_id"].as_str().unwrap();
    server.wait_for_status(id, "completed", WAIT).await;
}

#[tokio::test]
async fn under_a_documents_root_only_visible_document_files_are_read() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("sqlite scratch");
    let root = documents(&scratch);
    let server = Server::serve(
        &scratch,
        &["--documents-root".into(), root.display().to_string()],
    );
    // Refused at submission: hidden, not a document type whatever format
    // says, or outside the root.
    for (parameters, message) in [
        (json!({"path": ".env", "format": "text"}), "hidden"),
        (json!({"path": "sub/../.env"}), "hidden"),
        (
            json!({"path": "secret.key", "format": "text"}),
            "unsupported file type",
        ),
        (
            json!({"path": "secret.key", "format": "markdown"}),
            "unsupported file type",
        ),
        (
            json!({"path": "/etc/passwd", "format": "text"}),
            "outside the documents root",
        ),
        (
            json!({"path": "../data/jobd.sqlite3", "format": "text"}),
            "outside the documents root",
        ),
    ] {
        let answer = submit_documents(&server, parameters.clone()).await;
        assert_refused(&answer, message, &parameters.to_string());
    }
    let answer = server
        .post("/api/v1/jobs/pipeline", Some(json!({"path": ".env"})))
        .await;
    assert_refused(&answer, "hidden", "pipeline .env");

    // Refused when run: what only the file system tells (a file without
    // an extension, a document name leading to a hidden file).
    for (parameters, message) in [
        (
            json!({"path": "keyfile", "format": "text"}),
            "unsupported file type",
        ),
        (json!({"path": "env.txt"}), "hidden"),
    ] {
        let (status, job) = submit_documents(&server, parameters.clone()).await;
        assert_eq!(status, 201, "{parameters}: {job}");
        let job = server
            .wait_for_status(job["job_id"].as_str().unwrap(), "failed", WAIT)
            .await;
        let error = job["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{parameters}: {job}");
        assert!(!job.to_string().contains(SECRET), "{parameters}: {job}");
    }

    // The directory itself gives its one visible document and nothing else.
    let (status, job) = submit_documents(&server, json!({"path": "."})).await;
    assert_eq!(status, 201, "{job}");
    let job = server
        .wait_for_status(job["job_id"].as_str().unwrap(), "completed", WAIT)
        .await;
    assert_eq!(job["result"]["documents"], 1, "{job}");
    let id = job["job_id"].as_str().unwrap();
    assert_eq!(job["result"]["artifact"], format!("{id}/chunks.jsonl"));
    let (status, chunks) = server
        .get_bytes(&format!("/api/v1/jobs/status/{id}/artifacts/chunks.jsonl"))
        .await;
    assert_eq!(status, 200);
    let chunks = String::from_utf8(chunks).unwrap();
    assert!(chunks.contains("Telescopes"), "{chunks}");
    assert!(!chunks.contains(SECRET), "{chunks}");

    // A restart cannot bring in what a submission could not.
    let id = job["job_id"].as_str().unwrap();
    let (status, failed) = submit_documents(&server, json!({"path": "missing.txt"})).await;
    assert_eq!(status, 201, "{failed}");
    let failed = failed["job_id"].as_str().unwrap();
    server.wait_for_status(failed, "failed", WAIT).await;
    let answer = server
        .post(
            &format!("/api/v1/jobs/restart/{failed}"),
            Some(json!({"parameters": {"path": ".env", "format": "text"}})),
        )
        .await;
    assert_refused(&answer, "hidden", "restart with .env");
    assert_eq!(server.job(failed).await["status"], "failed");
    assert_ne!(id, failed);
}

/// `jobd serve` with these extra flags exits with an error (within a
/// deadline) and says so on stderr; returns stderr.
fn refused_at_start(scratch: &Scratch, extra: &[&str]) -> String {
    let mut child = Command::new(jobd_bin())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .current_dir(scratch.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jobd");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait for jobd") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            assert!(!status.success(), "{extra:?}: {stderr}");
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("jobd serve {extra:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_documents_root_holding_the_data_directory_is_refused_at_start() {
    let scratch = Scratch::new(StoreKind::Sqlite).expect("sqlite scratch");
    let path = |p: &Path| p.display().to_string();
    let data = scratch.path().join("data");
    let root = path(scratch.path());
    // The data directory inside the root (as `.` with the default data
    // directory was), named absolutely or relatively, existing or not.
    for extra in [
        vec!["--data-dir", &path(&data), "--documents-root", &root],
        vec!["--documents-root", "."],
        vec!["--data-dir", "./x/../jobd-data", "--documents-root", "."],
    ] {
        let stderr = refused_at_start(&scratch, &extra);
        assert!(
            stderr.contains("inside documents_root"),
            "{extra:?}: {stderr}"
        );
    }
    // The root inside the data directory, and a root that does not exist.
    std::fs::create_dir_all(data.join("artifacts")).unwrap();
    let inner = path(&data.join("artifacts"));
    let stderr = refused_at_start(
        &scratch,
        &["--data-dir", &path(&data), "--documents-root", &inner],
    );
    assert!(stderr.contains("inside the data directory"), "{stderr}");
    let stderr = refused_at_start(&scratch, &["--documents-root", "no-such-dir"]);
    assert!(stderr.contains("not an existing directory"), "{stderr}");
}

/// Submits a job as `user` and waits for it to end with `status`.
async fn run_as(server: &Server, user: &str, body: Value, status: &str) -> Value {
    let mut body = body;
    body["user_id"] = json!(user);
    let job = server.submit(body).await;
    server
        .wait_for_status(job["job_id"].as_str().unwrap(), status, WAIT)
        .await
}

async fn another_users_artifacts_are_not_read(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let topics = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/docs/topics.md");
    let text = std::fs::read_to_string(topics).unwrap() + &format!("\n\nPassword {SECRET}.\n");
    let alices = run_as(
        &server,
        "alice",
        json!({"job_type": "document_processing", "parameters": {"text": text, "name": "a.md"}}),
        "completed",
    )
    .await;
    let alices_id = alices["job_id"].as_str().unwrap();
    let artifact = alices["result"]["artifact"].clone();

    // Bob names her artifact, depends on her job, or both: refused.
    for (parameters, depends_on, message) in [
        (
            json!({"chunks_artifacts": [artifact]}),
            json!([]),
            "not an artifact of a job this one depends on",
        ),
        (json!({}), json!([alices_id]), "belongs to another user"),
        (
            json!({"chunks_artifacts": [artifact]}),
            json!([alices_id]),
            "belongs to another user",
        ),
    ] {
        let job = run_as(
            &server,
            "bob",
            json!({"job_type": "taxonomy_processing", "parameters": parameters,
                   "depends_on": depends_on}),
            "failed",
        )
        .await;
        assert!(
            job["error"].as_str().unwrap_or_default().contains(message),
            "{job}"
        );
        assert!(!job.to_string().contains(SECRET), "{job}");
    }
    // Through one of his own jobs, named with `..` into hers: refused too.
    let bobs = run_as(
        &server,
        "bob",
        json!({"job_type": "document_processing", "parameters": {"text": "Bob's words."}}),
        "completed",
    )
    .await;
    let bobs_id = bobs["job_id"].as_str().unwrap();
    let sneaky = format!("{bobs_id}/../{alices_id}/chunks.jsonl");
    let job = run_as(
        &server,
        "bob",
        json!({"job_type": "taxonomy_processing", "parameters": {"chunks_artifacts": [sneaky]},
               "depends_on": [bobs_id]}),
        "failed",
    )
    .await;
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not an artifact of a job this one depends on"),
        "{job}"
    );
    // An inline taxonomy naming her chunks gives extraction nothing to read.
    let job = run_as(
        &server,
        "bob",
        json!({"job_type": "extraction", "parameters": {"taxonomy": {
            "categories": [{"name": "secret", "terms": [SECRET]}],
            "chunk_artifacts": [artifact]}}}),
        "failed",
    )
    .await;
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no chunks given"),
        "{job}"
    );

    // Alice's own dependency is read, depended on and named.
    let taxonomy = run_as(
        &server,
        "alice",
        json!({"job_type": "taxonomy_processing", "parameters": {"chunks_artifacts": [artifact]},
               "depends_on": [alices_id]}),
        "completed",
    )
    .await;
    assert!(
        taxonomy["result"]["chunks"].as_u64().unwrap() > 0,
        "{taxonomy}"
    );
    let taxonomy_id = taxonomy["job_id"].as_str().unwrap();
    let extraction = run_as(
        &server,
        "alice",
        json!({"job_type": "extraction", "parameters": {},
               "depends_on": [taxonomy_id, alices_id]}),
        "completed",
    )
    .await;
    assert!(
        extraction["result"]["chunks"].as_u64().unwrap() > 0,
        "{extraction}"
    );
}

for_each_store!(another_users_artifacts_are_not_read);
