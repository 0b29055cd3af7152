//! An S3-compatible server for the tests: moto's standalone server, pinned
//! in tests/s3/requirements.txt and installed from PyPI into
//! `target/moto-venv` (made again only when the pins change), started on a
//! free port with one bucket, and killed on drop. Anything that stops it
//! from running fails the test: the S3 tests never skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::support::wait_until;

/// The pins, and the copy of them a finished venv keeps.
const REQUIREMENTS: &str = "tests/s3/requirements.txt";
const INSTALLED_PINS: &str = "requirements.txt";

/// One set-up at a time within this test process.
static VENV: Mutex<()> = Mutex::new(());

/// A running `moto_server` with one bucket.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket made for the test.
    pub bucket: String,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    /// Installs moto if needed, starts it, and creates `bucket`.
    pub async fn start(bucket: &str) -> Moto {
        let server = venv().join("bin/moto_server");
        let log = tempfile::NamedTempFile::new().expect("moto's log file");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.reopen().expect("moto's log file")))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let log_path = log.path().to_owned();
        wait_until("moto_server to answer", Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "moto_server exited ({status}) before it answered: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            let probe = http.get(format!("{endpoint}/moto-api/")).send();
            async move { probe.await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        let created = http
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .expect("create the bucket");
        assert_eq!(created.status(), 200, "creating bucket {bucket}");
        Moto {
            child,
            endpoint,
            bucket: bucket.to_owned(),
            _log: log,
        }
    }

    /// The environment that points a jobd process (its `s3://` artifact
    /// store) at this server.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &self.endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ]
    }

    /// The keys in the bucket under `prefix` (one page of up to 1,000).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let url = format!(
            "{}/{}?list-type=2&prefix={prefix}",
            self.endpoint, self.bucket
        );
        let listing = reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("list the bucket");
        let xml = listing.text().await.expect("listing body");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/moto-venv` with the pinned moto installed: made (with
/// `python3 -m venv` and pip) when missing or when its copy of the pins
/// differs from tests/s3/requirements.txt, which it takes last, so an
/// interrupted install is made again.
fn venv() -> PathBuf {
    let _one_at_a_time = VENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let requirements = root.join(REQUIREMENTS);
    let venv = root.join("target/moto-venv");
    let wanted = std::fs::read(&requirements).expect("tests/s3/requirements.txt");
    if std::fs::read(venv.join(INSTALLED_PINS)).ok().as_ref() == Some(&wanted) {
        return venv;
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).expect("remove the old moto venv");
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements));
    std::fs::write(venv.join(INSTALLED_PINS), wanted).expect("record the installed pins");
    venv
}

/// Runs a set-up command and fails the test, with its output, unless it
/// succeeds.
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
