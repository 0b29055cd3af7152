//! Test support: real `jobd` processes on free ports over a temporary data
//! directory, an HTTP client, and waiting on conditions with deadlines.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The jobd binary under test.
pub fn jobd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_jobd")
}

/// Waits until `check` returns `Some`, polling every 20 ms, and panics with
/// `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A SQLite file in the scratch directory.
    Sqlite,
    /// A `redis-server` of the test's own, on a free port.
    Redis,
}

/// A scratch directory with the store and any config files of a test.
pub struct Scratch {
    dir: tempfile::TempDir,
    redis: Option<RedisServer>,
    prefix: String,
}

impl Scratch {
    /// A new scratch directory for a test on `kind`; `None` (after a loud
    /// message) when Redis is wanted but `redis-server` is not installed
    /// and `JOBD_REQUIRE_REDIS` is not set.
    pub fn new(kind: StoreKind) -> Option<Scratch> {
        let redis = match kind {
            StoreKind::Sqlite => None,
            StoreKind::Redis => Some(RedisServer::start()?),
        };
        Some(Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
            redis,
            prefix: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The flags that point a server at this test's store.
    pub fn store_args(&self) -> Vec<String> {
        match &self.redis {
            None => vec![
                "--data-dir".into(),
                self.dir.path().join("data").display().to_string(),
            ],
            Some(redis) => vec![
                "--store".into(),
                redis.url.clone(),
                "--redis-prefix".into(),
                self.prefix.clone(),
                "--data-dir".into(),
                self.dir.path().join("data").display().to_string(),
                // The pipeline on Redis needs an artifact store every
                // process reaches: the scratch directory's, shared.
                "--artifacts".into(),
                self.dir.path().join("artifacts").display().to_string(),
            ],
        }
    }

    /// The flags for this test's Redis with a data directory and an
    /// artifact store of the caller's choosing (`None`: the default, the
    /// data directory's own), as a process on a host of its own has them.
    pub fn redis_args_with(&self, data_dir: &Path, artifacts: Option<&str>) -> Vec<String> {
        let redis = self.redis.as_ref().expect("a Redis scratch");
        let mut args = vec![
            "--store".into(),
            redis.url.clone(),
            "--redis-prefix".into(),
            self.prefix.clone(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        if let Some(artifacts) = artifacts {
            args.extend(["--artifacts".into(), artifacts.to_owned()]);
        }
        args
    }

    /// Writes a file into the scratch directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }
}

/// A throw-away `redis-server` on a free port, killed on drop.
pub struct RedisServer {
    child: Child,
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
    port: u16,
    persistent: bool,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one without persistence; `None` when `redis-server` is
    /// missing and not required.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(false)
    }

    /// Starts one with an append-only file fsynced on every write, the
    /// setting under which no acknowledged job is lost across a restart.
    pub fn start_persistent() -> Option<RedisServer> {
        RedisServer::start_with(true)
    }

    fn start_with(persistent: bool) -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("JOBD_REQUIRE_REDIS").is_none(),
                "redis-server is not installed but JOBD_REQUIRE_REDIS is set"
            );
            eprintln!("\n!!! SKIPPING a Redis test: redis-server is not installed !!!\n");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            if let Some(child) = spawn_redis(port, dir.path(), persistent) {
                return Some(RedisServer {
                    child,
                    url: format!("redis://127.0.0.1:{port}/0"),
                    port,
                    persistent,
                    dir,
                });
            }
        }
        panic!("could not start redis-server");
    }

    /// The server's process id (to pause it with SIGSTOP, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill9();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = spawn_redis(self.port, self.dir.path(), self.persistent) {
                self.child = child;
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not restart");
        }
    }
}

/// Starts redis-server and waits until it answers; `None` if it exits
/// (its port was taken).
fn spawn_redis(port: u16, dir: &Path, persistent: bool) -> Option<Child> {
    let persistence: &[&str] = if persistent {
        &["--appendonly", "yes", "--appendfsync", "always"]
    } else {
        &["--appendonly", "no"]
    };
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(persistence)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if redis_answers(port) {
            return Some(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn redis_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a test body once per store: `for_each_store!(test_a, test_b)` makes
/// `sqlite::test_a`, `redis::test_a`, ... from `async fn test_a(kind: StoreKind)`.
#[macro_export]
macro_rules! for_each_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::StoreKind::Sqlite).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::StoreKind::Redis).await
                }
            )*
        }
    };
}

/// Settings for fast tests (short leases and intervals), less any flag
/// that `extra` sets itself, followed by `extra`.
fn with_fast_args(extra: &[String]) -> Vec<String> {
    let fast = [
        ("--heartbeat-interval-seconds", "0.3"),
        ("--lease-timeout-seconds", "3"),
        ("--lease-check-interval-seconds", "0.3"),
        ("--cancel-grace-seconds", "2"),
        ("--shutdown-grace-seconds", "1"),
        ("--sqlite-synchronous", "normal"),
    ];
    let mut args = Vec::new();
    for (flag, value) in fast {
        if !extra.iter().any(|e| e == flag) {
            args.push(flag.to_string());
            args.push(value.to_string());
        }
    }
    args.extend(extra.iter().cloned());
    args
}

/// A running `jobd serve` (or `jobd worker`) process.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, for `serve`.
    pub url: String,
    /// A client for it.
    pub http: reqwest::Client,
}

impl Server {
    /// Starts `jobd serve` on a free port on the test's store, with extra flags.
    pub fn serve(scratch: &Scratch, extra: &[String]) -> Server {
        Server::serve_env(scratch, extra, &[])
    }

    /// [`Server::serve`] with extra environment variables.
    pub fn serve_env(scratch: &Scratch, extra: &[String], envs: &[(&str, &str)]) -> Server {
        let mut args = vec!["serve".to_string(), "--bind".into(), "127.0.0.1:0".into()];
        args.extend(scratch.store_args());
        args.extend(with_fast_args(extra));
        Server::start(&args, envs, "jobd listening on ")
    }

    /// [`Server::serve`] from a shell that runs `setup` first (such as
    /// `ulimit -n 256`) and then becomes `jobd` (same process id).
    pub fn serve_after(scratch: &Scratch, setup: &str, extra: &[String]) -> Server {
        let mut args = vec![
            "-c".to_string(),
            format!("{setup} && exec \"$0\" \"$@\""),
            jobd_bin().to_owned(),
            "serve".into(),
            "--bind".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(scratch.store_args());
        args.extend(with_fast_args(extra));
        Server::start_program("sh", &args, &[], "jobd listening on ", Stdio::inherit())
    }

    /// `jobd serve` on a free port with the store flags given whole
    /// (rather than the scratch's), extra flags and environment variables.
    pub fn serve_on(store_args: &[String], extra: &[String], envs: &[(&str, &str)]) -> Server {
        let mut args = vec!["serve".to_string(), "--bind".into(), "127.0.0.1:0".into()];
        args.extend(store_args.iter().cloned());
        args.extend(with_fast_args(extra));
        Server::start(&args, envs, "jobd listening on ")
    }

    /// `jobd worker` with the store flags given whole, whose log (`info`,
    /// as JSON lines) goes to the file `log`.
    pub fn worker_logged(
        store_args: &[String],
        extra: &[String],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Server {
        let mut args = vec!["worker".to_string(), "--log-format".into(), "json".into()];
        args.extend(store_args.iter().cloned());
        args.extend(with_fast_args(extra));
        let file = std::fs::File::create(log).expect("create the worker's log");
        let mut envs = envs.to_vec();
        envs.push(("RUST_LOG", "info"));
        Server::start_program(jobd_bin(), &args, &envs, "jobd worker ", file.into())
    }

    /// Starts `jobd worker` on the test's store, with extra flags.
    pub fn worker(scratch: &Scratch, extra: &[String]) -> Server {
        Server::worker_env(scratch, extra, &[])
    }

    /// [`Server::worker`] with extra environment variables.
    pub fn worker_env(scratch: &Scratch, extra: &[String], envs: &[(&str, &str)]) -> Server {
        let mut args = vec!["worker".to_string()];
        args.extend(scratch.store_args());
        args.extend(with_fast_args(extra));
        Server::start(&args, envs, "jobd worker ")
    }

    fn start(args: &[String], envs: &[(&str, &str)], ready_prefix: &str) -> Server {
        Server::start_program(jobd_bin(), args, envs, ready_prefix, Stdio::inherit())
    }

    fn start_program(
        program: &str,
        args: &[String],
        envs: &[(&str, &str)],
        ready_prefix: &str,
        stderr: Stdio,
    ) -> Server {
        // `envs` may set RUST_LOG over the quiet default.
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(envs.iter().copied())
            .env_remove("JOBD_URL")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start jobd");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("jobd {args:?} exited before it was ready"));
        let url = first
            .strip_prefix(ready_prefix)
            .unwrap_or_else(|| panic!("unexpected first line from jobd: {first}"))
            .trim()
            .to_owned();
        // Keep draining stdout so the process never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        // A bound on every request, so a hung server fails the test instead
        // of hanging it.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        Server { child, url, http }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `base + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Submits a job and returns its JSON (asserting 201).
    pub async fn submit(&self, body: Value) -> Value {
        let response = self
            .http
            .post(self.at("/api/v1/jobs"))
            .json(&body)
            .send()
            .await
            .expect("submit");
        let status = response.status();
        let job: Value = response.json().await.expect("submit body");
        assert_eq!(status, 201, "submit failed: {job}");
        job
    }

    /// Submits a job of `job_type` with `parameters` and returns its id.
    pub async fn submit_id(&self, job_type: &str, parameters: Value) -> String {
        let job = self
            .submit(json!({"job_type": job_type, "parameters": parameters}))
            .await;
        job["job_id"].as_str().expect("job_id").to_owned()
    }

    /// GET returning (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.at(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GET returning (status, body bytes), for what is not JSON.
    pub async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let response = self.http.get(self.at(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }

    /// POST with an optional JSON body, returning (status, JSON body).
    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.post(self.at(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The job's current JSON.
    pub async fn job(&self, id: &str) -> Value {
        let (status, job) = self.get(&format!("/api/v1/jobs/status/{id}")).await;
        assert_eq!(status, 200, "status of {id}: {job}");
        job
    }

    /// Waits until the job has `status`.
    pub async fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id).await;
            if job["status"] == status {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for job to be {status}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/queue/stats`.
    pub async fn stats(&self) -> Value {
        self.get("/api/v1/jobs/queue/stats").await.1
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns its success.
    pub fn terminate(mut self, timeout: Duration) -> bool {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `jobd` CLI against `url`; returns (exit code, stdout, stderr).
pub fn cli(url: &str, args: &[&str]) -> (i32, String, String) {
    cli_env(url, args, &[])
}

/// [`cli`] with extra environment variables.
pub fn cli_env(url: &str, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    run_cli(Command::new(jobd_bin()), url, args, envs)
}

/// [`cli`] run in the directory `dir` (its relative paths are there).
pub fn cli_in(dir: &Path, url: &str, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(jobd_bin());
    command.current_dir(dir);
    run_cli(command, url, args, &[])
}

fn run_cli(
    mut command: Command,
    url: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (i32, String, String) {
    let output = command
        .args(args)
        .env("JOBD_URL", url)
        .envs(envs.iter().copied())
        .output()
        .expect("run jobd cli");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// True while a process with this pid exists.
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}
