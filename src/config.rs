//! Configuration: one set of settings read from command-line flags, their
//! `JOBD_*` environment variables and an optional TOML file, in that order
//! of precedence, then validated once into [`Settings`]. Every default is
//! the seed's value where the seed names one.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::model::{Cadence, ScheduleSpec, check_schedule_name};

/// Settings as given: every field optional, so flags, environment and file
/// can be layered. Each flag's environment variable is `JOBD_` plus its
/// name in capitals; each is also a top-level key of the TOML file.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsArgs {
    /// Address the HTTP API listens on [default: 127.0.0.1:8000].
    #[arg(long, env = "JOBD_BIND")]
    pub bind: Option<SocketAddr>,
    /// Address `jobd worker` serves its own Prometheus `/metrics` on
    /// [default: none; `serve` has `/metrics` on --bind].
    #[arg(long, env = "JOBD_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
    /// The store: `sqlite` (embedded, in --data-dir) or a Redis URL
    /// `redis://HOST:PORT/DB` shared by many processes [default: sqlite].
    #[arg(long, env = "JOBD_STORE")]
    pub store: Option<String>,
    /// Directory of the embedded store [default: ./jobd-data].
    #[arg(long, env = "JOBD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Name of the deployment in Redis: every key starts with `{NAME}:`
    /// [default: jobd].
    #[arg(long, env = "JOBD_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Jobs this process runs at once [default: the global limit; 0 makes
    /// `serve` an API node only].
    #[arg(long, env = "JOBD_WORKERS")]
    pub workers: Option<usize>,
    /// Jobs running at once across all workers, at most [default: 10].
    #[arg(long, env = "JOBD_GLOBAL_MAX_CONCURRENT_JOBS")]
    pub global_max_concurrent_jobs: Option<usize>,
    /// Jobs running at once per user, at most [default: 3].
    #[arg(long, env = "JOBD_PER_USER_MAX_CONCURRENT_JOBS")]
    pub per_user_max_concurrent_jobs: Option<usize>,
    /// Seconds between a worker's heartbeats [default: 10].
    #[arg(long, env = "JOBD_HEARTBEAT_INTERVAL_SECONDS")]
    pub heartbeat_interval_seconds: Option<f64>,
    /// Seconds a claim stays valid without a heartbeat; a running job whose
    /// worker is silent longer is recovered [default: 60].
    #[arg(long, env = "JOBD_LEASE_TIMEOUT_SECONDS")]
    pub lease_timeout_seconds: Option<f64>,
    /// Seconds between checks for expired leases and stale workers [default: 15].
    #[arg(long, env = "JOBD_LEASE_CHECK_INTERVAL_SECONDS")]
    pub lease_check_interval_seconds: Option<f64>,
    /// Seconds after which a silent worker's registration is removed [default: 300].
    #[arg(long, env = "JOBD_STALE_WORKER_SECONDS")]
    pub stale_worker_seconds: Option<f64>,
    /// Times a job may lose its worker before it fails as "worker lost" [default: 3].
    #[arg(long, env = "JOBD_MAX_INTERRUPTIONS")]
    pub max_interruptions: Option<u32>,
    /// Seconds between retention cleanup passes [default: 600].
    #[arg(long, env = "JOBD_CLEANUP_INTERVAL_SECONDS")]
    pub cleanup_interval_seconds: Option<f64>,
    /// Seconds completed jobs are kept [default: 86400].
    #[arg(long, env = "JOBD_COMPLETED_RETENTION_SECONDS")]
    pub completed_retention_seconds: Option<f64>,
    /// Seconds failed and cancelled jobs are kept [default: 7200].
    #[arg(long, env = "JOBD_FAILED_RETENTION_SECONDS")]
    pub failed_retention_seconds: Option<f64>,
    /// Seconds audit log entries are kept [default: 2592000, 30 days].
    #[arg(long, env = "JOBD_AUDIT_RETENTION_SECONDS")]
    pub audit_retention_seconds: Option<f64>,
    /// Seconds after which an orphaned processing lock is cleared [default: 600].
    #[arg(long, env = "JOBD_ORPHANED_LOCK_SECONDS")]
    pub orphaned_lock_seconds: Option<f64>,
    /// Seconds a cancelled or timed-out job's handler gets to stop before
    /// it is aborted (an external command is then killed) [default: 10].
    #[arg(long, env = "JOBD_CANCEL_GRACE_SECONDS")]
    pub cancel_grace_seconds: Option<f64>,
    /// Seconds running jobs get to finish on shutdown before they are
    /// stopped and re-queued [default: 30].
    #[arg(long, env = "JOBD_SHUTDOWN_GRACE_SECONDS")]
    pub shutdown_grace_seconds: Option<f64>,
    /// Attempts a job gets unless its type or submission says otherwise [default: 1].
    #[arg(long, env = "JOBD_DEFAULT_MAX_ATTEMPTS")]
    pub default_max_attempts: Option<u32>,
    /// Base of the exponential retry backoff, in seconds [default: 5].
    #[arg(long, env = "JOBD_RETRY_BACKOFF_SECONDS")]
    pub retry_backoff_seconds: Option<f64>,
    /// Largest request body accepted, in bytes [default: 1048576].
    #[arg(long, env = "JOBD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Time a client has to send a request's headers (on a kept-alive
    /// connection, counted from the previous response) and, separately,
    /// its body [default: 10].
    #[arg(long, env = "JOBD_HTTP_READ_TIMEOUT_SECONDS")]
    pub http_read_timeout_seconds: Option<f64>,
    /// HTTP connections open at once; more wait to be accepted [default:
    /// the open-file limit less a quarter of it, at most 256 less].
    #[arg(long, env = "JOBD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Directory that document-processing jobs may read files from; paths
    /// outside it are refused. It must exist and must not contain the data
    /// directory [default: none: jobs read no files, only inline text].
    #[arg(long, env = "JOBD_DOCUMENTS_ROOT")]
    pub documents_root: Option<PathBuf>,
    /// Seconds an idempotency key holds the job its first submission
    /// stored [default: 86400].
    #[arg(long, env = "JOBD_IDEMPOTENCY_TTL_SECONDS")]
    pub idempotency_ttl_seconds: Option<f64>,
    /// Where pipeline artifacts are kept: a directory, a `file://` URL, or
    /// an S3-compatible bucket `s3://BUCKET/PREFIX` (credentials and
    /// endpoint from the `AWS_*` environment variables) [default:
    /// DATA_DIR/artifacts, which on Redis no other machine can read].
    #[arg(long, env = "JOBD_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// SQLite durability: `full` survives power loss, `normal` a process
    /// crash only [default: full].
    #[arg(long, env = "JOBD_SQLITE_SYNCHRONOUS", value_enum)]
    pub sqlite_synchronous: Option<Synchronous>,
    /// Bytes of log text kept per job; older lines are dropped first
    /// [default: 4194304, at least 65536].
    #[arg(long, env = "JOBD_JOB_LOG_MAX_BYTES")]
    pub job_log_max_bytes: Option<usize>,
    /// Who may call the API: `none` (anyone, as anyone: for loopback) or
    /// `token` (a bearer token per caller, with a role). A server bound to
    /// a non-loopback address refuses to start unless this is set
    /// [default: none].
    #[arg(long, env = "JOBD_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// Origins (`https://app.example.com`) besides the server's own whose
    /// pages may submit, cancel and restart: a browser's POST, PUT, PATCH
    /// or DELETE from any other origin is a 403 [default: none].
    #[arg(long, env = "JOBD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Host names the server answers to besides loopback ones, any port;
    /// `*` for any, `*.example.com` for its subdomains. Another `Host` is
    /// a 403 [default: loopback names only when bound to a loopback
    /// address, else any].
    #[arg(long, env = "JOBD_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins whose pages may read the API's answers (CORS) [default:
    /// none: CORS is off].
    #[arg(long, env = "JOBD_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Queued jobs (pending or scheduled) one user may have, across every
    /// process sharing the store; a submission or restart past it is a 429
    /// [default: none].
    #[arg(long, env = "JOBD_MAX_QUEUED_JOBS_PER_USER")]
    pub max_queued_jobs_per_user: Option<u64>,
    /// Jobs per second one user may submit through this API node, on
    /// average (a token bucket; a chain of N jobs costs N) [default: none].
    #[arg(long, env = "JOBD_SUBMIT_RATE_PER_USER")]
    pub submit_rate_per_user: Option<f64>,
    /// Jobs one user may submit at once through this API node before
    /// `submit_rate_per_user` paces them (the bucket's size) [default: the
    /// rate, rounded up].
    #[arg(long, env = "JOBD_SUBMIT_BURST_PER_USER")]
    pub submit_burst_per_user: Option<u32>,
    /// SSE streams and long-polls open at once in this process [default: 10000].
    #[arg(long, env = "JOBD_MAX_OPEN_STREAMS")]
    pub max_open_streams: Option<usize>,
    /// SSE streams and long-polls one caller may have open at once in this
    /// process [default: none].
    #[arg(long, env = "JOBD_MAX_OPEN_STREAMS_PER_CALLER")]
    pub max_open_streams_per_caller: Option<usize>,
}

/// A job type of the configuration file: `[job_types.NAME]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobTypeConfig {
    /// An external command (program and arguments) that runs the job. Without
    /// it the type must be a built-in handler, whose options this sets, or
    /// remote.
    pub command: Option<Vec<String>>,
    /// Served by remote workers (over the HTTP worker protocol), never by
    /// built-in ones: submissions validate before any remote worker
    /// connects, and a built-in type declared so is routed away from its
    /// built-in handler.
    pub remote: Option<bool>,
    /// Per-attempt time limit.
    pub timeout_seconds: Option<f64>,
    /// Attempts allowed.
    pub max_attempts: Option<u32>,
    /// Base of this type's exponential retry backoff.
    pub retry_backoff_seconds: Option<f64>,
    /// Default deadline of this type's jobs, in seconds from submission: a
    /// job not started by then is cancelled with the error `expired`.
    pub expires_in_seconds: Option<f64>,
    /// A JSON pointer into the parameters (`/document_set`) whose value is
    /// a job's concurrency key, unless the submission gives its own.
    pub concurrency_key: Option<String>,
    /// Jobs of this type with one concurrency key running at once, at most.
    pub max_concurrent_per_key: Option<usize>,
    /// Jobs of this type running at once, at most.
    pub max_concurrent: Option<usize>,
    /// Starts of this type (or of each key) per window, at most.
    pub rate_limit: Option<RateLimitConfig>,
}

/// `rate_limit = { count = 10, per_seconds = 1, per_key = false }`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Starts per window.
    pub count: usize,
    /// The window's length.
    pub per_seconds: f64,
    /// One window per concurrency key rather than one for the type.
    #[serde(default)]
    pub per_key: bool,
}

/// A user of the configuration file: `[users.NAME]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user's round-robin weight: w times the share of a user of
    /// weight 1 per round (default 1).
    pub weight: Option<u32>,
}

/// The TOML file: the settings at top level plus `[job_types.*]`.
#[derive(Debug, Default)]
struct FileConfig {
    settings: SettingsArgs,
    job_types: BTreeMap<String, JobTypeConfig>,
    users: BTreeMap<String, UserConfig>,
    schedules: BTreeMap<String, ScheduleSpec>,
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("invalid TOML in {}", path.display()))?;
    let job_types = match table.remove("job_types") {
        Some(value) => value
            .try_into()
            .with_context(|| format!("invalid [job_types] in {}", path.display()))?,
        None => BTreeMap::new(),
    };
    let users = match table.remove("users") {
        Some(value) => value
            .try_into()
            .with_context(|| format!("invalid [users] in {}", path.display()))?,
        None => BTreeMap::new(),
    };
    let schedules = match table.remove("schedules") {
        Some(value) => value
            .try_into()
            .with_context(|| format!("invalid [schedules] in {}", path.display()))?,
        None => BTreeMap::new(),
    };
    let settings = toml::Value::Table(table)
        .try_into()
        .with_context(|| format!("invalid settings in {}", path.display()))?;
    Ok(FileConfig {
        settings,
        job_types,
        users,
        schedules,
    })
}

/// How callers are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No identities: any caller may do anything, as any user (`X-User-Id`).
    None,
    /// Every call but health, metrics-free pages and the documents carries
    /// `Authorization: Bearer <token>`; the token's role decides.
    Token,
}

/// The bootstrap admin token of `JOBD_ADMIN_TOKEN`, kept only as its
/// SHA-256 so that no settings dump can show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub [u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// The environment variable of the bootstrap admin token.
pub const ADMIN_TOKEN_ENV: &str = "JOBD_ADMIN_TOKEN";

/// The shortest bootstrap admin token accepted, in characters.
const MIN_ADMIN_TOKEN_CHARS: usize = 32;

impl AdminToken {
    /// The token of `text`, which must be long enough to be a secret.
    pub fn new(text: &str) -> anyhow::Result<AdminToken> {
        use sha2::Digest;
        if text.chars().count() < MIN_ADMIN_TOKEN_CHARS {
            bail!(
                "{ADMIN_TOKEN_ENV} must be at least {MIN_ADMIN_TOKEN_CHARS} characters \
                 (for example the output of `openssl rand -hex 32`)"
            );
        }
        Ok(AdminToken(sha2::Sha256::digest(text.as_bytes()).into()))
    }
}

/// Which backend holds the jobs.
/// How durably the SQLite store writes a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged job survives power loss.
    Full,
    /// fsync at checkpoints: an acknowledged job survives a crash of the
    /// process (kill -9), not of the machine.
    Normal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded SQLite file under `data_dir`.
    Sqlite,
    /// A Redis server, by URL, with keys under `{prefix}:`.
    Redis {
        /// `redis://HOST:PORT/DB`.
        url: String,
        /// The deployment's name in the keys.
        prefix: String,
    },
}

/// Where pipeline artifacts are kept (the setting `artifacts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ArtifactLocation {
    /// `DATA_DIR/artifacts`: this machine's disk only.
    #[default]
    Default,
    /// A directory named by the setting, shared by every node that uses it
    /// (a shared file system in a cluster).
    Directory(PathBuf),
    /// An S3-compatible bucket and key prefix, `s3://BUCKET/PREFIX`.
    S3(String),
}

impl ArtifactLocation {
    /// Reads the setting: a path, a `file://` URL or an `s3://` URL.
    pub fn parse(text: &str) -> anyhow::Result<ArtifactLocation> {
        if text.starts_with("s3://") {
            return Ok(ArtifactLocation::S3(text.to_owned()));
        }
        let path = match text.split_once("://") {
            Some(("file", path)) => path,
            Some((scheme, _)) => bail!(
                "artifacts = {text}: {scheme}:// is not supported (a directory, file:// or s3://)"
            ),
            None => text,
        };
        if path.is_empty() {
            bail!("artifacts must name a directory, a file:// URL or an s3:// URL");
        }
        Ok(ArtifactLocation::Directory(PathBuf::from(path)))
    }
}

/// Validated settings, as every part of jobd receives them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP listen address.
    pub bind: SocketAddr,
    /// Where `jobd worker` serves its `/metrics`, if anywhere.
    pub metrics_bind: Option<SocketAddr>,
    /// The backend.
    pub store: StoreConfig,
    /// Embedded store directory.
    pub data_dir: PathBuf,
    /// Jobs this process runs at once.
    pub workers: usize,
    /// Global concurrency limit.
    pub global_max_concurrent_jobs: usize,
    /// Per-user concurrency limit.
    pub per_user_max_concurrent_jobs: usize,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Lease length; a silent worker's jobs are recovered after it.
    pub lease_timeout: Duration,
    /// Reaper period.
    pub lease_check_interval: Duration,
    /// Silence after which a worker registration is removed.
    pub stale_worker_after: Duration,
    /// Interruptions tolerated before "worker lost".
    pub max_interruptions: u32,
    /// Cleanup period.
    pub cleanup_interval: Duration,
    /// Retention of completed jobs.
    pub completed_retention: Duration,
    /// Retention of failed and cancelled jobs.
    pub failed_retention: Duration,
    /// Retention of audit log entries.
    pub audit_retention: Duration,
    /// Age at which an orphaned processing lock is cleared.
    pub orphaned_lock_after: Duration,
    /// Time a stopped handler gets before it is aborted.
    pub cancel_grace: Duration,
    /// Time running jobs get on shutdown.
    pub shutdown_grace: Duration,
    /// Default attempts per job.
    pub default_max_attempts: u32,
    /// Default retry backoff base.
    pub retry_backoff: Duration,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Time to send a request's headers, and its body.
    pub http_read_timeout: Duration,
    /// HTTP connections at once; `None`: from the open-file limit.
    pub max_connections: Option<usize>,
    /// Where document-processing jobs may read files (canonical); `None`:
    /// they read none, only inline text.
    pub documents_root: Option<PathBuf>,
    /// Where pipeline artifacts are kept.
    pub artifacts: ArtifactLocation,
    /// How long an idempotency key holds its job.
    pub idempotency_ttl: Duration,
    /// SQLite durability.
    pub sqlite_synchronous: Synchronous,
    /// Bytes of log text kept per job (oldest lines dropped first).
    pub job_log_max_bytes: usize,
    /// How callers are identified.
    pub auth: AuthMode,
    /// Whether `auth` was given (flag, environment or file), not defaulted:
    /// only a chosen `none` may serve beyond loopback.
    pub auth_chosen: bool,
    /// The bootstrap admin token (`JOBD_ADMIN_TOKEN`), if set.
    pub admin_token: Option<AdminToken>,
    /// Origins besides the server's own allowed to mutate from a browser
    /// (`scheme://host[:port]`, lower case, default port left out).
    pub allowed_origins: Vec<String>,
    /// Host names answered besides loopback ones (lower case; `*` any,
    /// `*.domain` its subdomains); `None`: the default for the bind address.
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins CORS is open to, as [`Settings::allowed_origins`]; empty: off.
    pub cors_allowed_origins: Vec<String>,
    /// Queued jobs per user, at most (the store checks it); `None`: no quota.
    pub max_queued_jobs_per_user: Option<u64>,
    /// Per-user submission rate of this node; `None`: none.
    pub submit_rate: Option<SubmitRate>,
    /// SSE streams and long-polls open at once in this process, at most.
    pub max_open_streams: usize,
    /// The same per caller; `None`: no limit per caller.
    pub max_open_streams_per_caller: Option<usize>,
    /// Configured job types.
    pub job_types: BTreeMap<String, JobTypeConfig>,
    /// Round-robin weights of users (`[users.NAME] weight`); others weigh 1.
    pub user_weights: BTreeMap<String, u32>,
    /// Schedules of the configuration file (`[schedules.NAME]`): every
    /// server writes them to the store when it starts.
    pub schedules: BTreeMap<String, ScheduleSpec>,
}

impl Default for Settings {
    fn default() -> Settings {
        // The defaults cannot fail to validate.
        Settings::from_args(SettingsArgs::default(), BTreeMap::new())
            .unwrap_or_else(|_| unreachable!("default settings are valid"))
    }
}

/// A per-user token bucket: `per_second` jobs on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubmitRate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The bucket's size: jobs a user may submit at once.
    pub burst: u32,
}

/// SSE streams and long-polls open at once per process by default: well
/// above the 5,000 the memory probe holds (about 13 KiB each).
pub const DEFAULT_MAX_OPEN_STREAMS: usize = 10_000;

/// Bytes of log text kept per job by default: a few MiB.
pub const DEFAULT_JOB_LOG_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Audit log entries are kept this long unless configured: 30 days.
const DEFAULT_AUDIT_RETENTION_SECONDS: f64 = 30.0 * 86400.0;

/// The smallest per-job log cap: a few of the longest lines (16 KiB).
const MIN_JOB_LOG_MAX_BYTES: usize = 64 * 1024;

fn seconds(name: &str, value: Option<f64>, default: f64) -> anyhow::Result<Duration> {
    let value = value.unwrap_or(default);
    if !(0.0..=10.0 * 365.0 * 86400.0).contains(&value) {
        bail!("{name} must be a number of seconds between 0 and ten years, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

impl JobTypeConfig {
    /// Whether remote workers serve this type.
    pub fn is_remote(&self) -> bool {
        self.remote == Some(true)
    }
}

/// The longest name a remote job type may have.
const MAX_REMOTE_TYPE_LEN: usize = 64;

/// Whether `name` may be a remote job type's: 1 to 64 of `[A-Za-z0-9_.-]`.
/// The name is part of Redis key names (a remote type's own queues), so it
/// holds nothing a key or the store's separators give meaning to.
fn valid_remote_type(name: &str) -> bool {
    (1..=MAX_REMOTE_TYPE_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Settings {
    /// Layers flags and environment (`args`) over the file named by
    /// `config` (if any) over the defaults, and validates the result.
    pub fn load(args: SettingsArgs, config: Option<&Path>) -> anyhow::Result<Settings> {
        let file = match config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut settings = Settings::from_args(args.over(file.settings), file.job_types)?;
        for (name, user) in file.users {
            match user.weight {
                Some(0) => bail!("user {name}: weight must be at least 1"),
                Some(weight) => {
                    settings.user_weights.insert(name, weight);
                }
                None => {}
            }
        }
        for (name, spec) in &file.schedules {
            check_schedule_name(name).map_err(anyhow::Error::msg)?;
            Cadence::of(spec).map_err(|e| anyhow::anyhow!("schedule {name}: {e}"))?;
        }
        settings.schedules = file.schedules;
        let admin = std::env::var(ADMIN_TOKEN_ENV).unwrap_or_default();
        if !admin.trim().is_empty() {
            settings.admin_token = Some(AdminToken::new(admin.trim())?);
        }
        Ok(settings)
    }

    /// Refuses to serve the API beyond loopback without identities, unless
    /// `auth = "none"` was chosen explicitly (then it is only allowed).
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        if self.bind.ip().is_loopback() || self.auth == AuthMode::Token || self.auth_chosen {
            return Ok(());
        }
        bail!(
            "refusing to serve on {} without authentication: anyone who can reach it could \
             act as any user. Set auth = \"token\" (--auth token, JOBD_AUTH=token) and create \
             tokens with JOBD_ADMIN_TOKEN, or pass --auth none to serve it open on purpose",
            self.bind
        )
    }

    fn from_args(
        a: SettingsArgs,
        job_types: BTreeMap<String, JobTypeConfig>,
    ) -> anyhow::Result<Settings> {
        let global = a.global_max_concurrent_jobs.unwrap_or(10);
        let per_user = a.per_user_max_concurrent_jobs.unwrap_or(3);
        if global == 0 || per_user == 0 {
            bail!("concurrency limits must be at least 1");
        }
        let prefix = a.redis_prefix.unwrap_or_else(|| "jobd".to_owned());
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            bail!("redis_prefix must be a non-empty name without braces");
        }
        let store = match a.store.as_deref() {
            None | Some("sqlite") => StoreConfig::Sqlite,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                StoreConfig::Redis {
                    url: url.to_owned(),
                    prefix,
                }
            }
            Some(other) => bail!("store must be 'sqlite' or a redis:// URL, got '{other}'"),
        };
        let settings = Settings {
            bind: a
                .bind
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000))),
            metrics_bind: a.metrics_bind,
            store,
            data_dir: a.data_dir.unwrap_or_else(|| PathBuf::from("jobd-data")),
            workers: a.workers.unwrap_or(global),
            global_max_concurrent_jobs: global,
            per_user_max_concurrent_jobs: per_user,
            heartbeat_interval: seconds(
                "heartbeat_interval_seconds",
                a.heartbeat_interval_seconds,
                10.0,
            )?,
            lease_timeout: seconds("lease_timeout_seconds", a.lease_timeout_seconds, 60.0)?,
            lease_check_interval: seconds(
                "lease_check_interval_seconds",
                a.lease_check_interval_seconds,
                15.0,
            )?,
            stale_worker_after: seconds("stale_worker_seconds", a.stale_worker_seconds, 300.0)?,
            max_interruptions: a.max_interruptions.unwrap_or(3),
            cleanup_interval: seconds(
                "cleanup_interval_seconds",
                a.cleanup_interval_seconds,
                600.0,
            )?,
            completed_retention: seconds(
                "completed_retention_seconds",
                a.completed_retention_seconds,
                86400.0,
            )?,
            failed_retention: seconds(
                "failed_retention_seconds",
                a.failed_retention_seconds,
                7200.0,
            )?,
            audit_retention: seconds(
                "audit_retention_seconds",
                a.audit_retention_seconds,
                DEFAULT_AUDIT_RETENTION_SECONDS,
            )?,
            orphaned_lock_after: seconds("orphaned_lock_seconds", a.orphaned_lock_seconds, 600.0)?,
            cancel_grace: seconds("cancel_grace_seconds", a.cancel_grace_seconds, 10.0)?,
            shutdown_grace: seconds("shutdown_grace_seconds", a.shutdown_grace_seconds, 30.0)?,
            default_max_attempts: a.default_max_attempts.unwrap_or(1),
            retry_backoff: seconds("retry_backoff_seconds", a.retry_backoff_seconds, 5.0)?,
            max_body_bytes: a.max_body_bytes.unwrap_or(1024 * 1024),
            http_read_timeout: seconds(
                "http_read_timeout_seconds",
                a.http_read_timeout_seconds,
                10.0,
            )?,
            max_connections: a.max_connections,
            documents_root: a.documents_root,
            idempotency_ttl: seconds(
                "idempotency_ttl_seconds",
                a.idempotency_ttl_seconds,
                86400.0,
            )?,
            artifacts: a
                .artifacts
                .as_deref()
                .map(ArtifactLocation::parse)
                .transpose()?
                .unwrap_or_default(),
            sqlite_synchronous: a.sqlite_synchronous.unwrap_or(Synchronous::Full),
            job_log_max_bytes: a.job_log_max_bytes.unwrap_or(DEFAULT_JOB_LOG_MAX_BYTES),
            auth: a.auth.unwrap_or(AuthMode::None),
            auth_chosen: a.auth.is_some(),
            admin_token: None,
            allowed_origins: origins("allowed_origins", a.allowed_origins)?,
            allowed_hosts: a.allowed_hosts.map(hosts).transpose()?,
            cors_allowed_origins: origins("cors_allowed_origins", a.cors_allowed_origins)?,
            max_queued_jobs_per_user: a.max_queued_jobs_per_user,
            submit_rate: submit_rate(a.submit_rate_per_user, a.submit_burst_per_user)?,
            max_open_streams: a.max_open_streams.unwrap_or(DEFAULT_MAX_OPEN_STREAMS),
            max_open_streams_per_caller: a.max_open_streams_per_caller,
            job_types,
            user_weights: BTreeMap::new(),
            schedules: BTreeMap::new(),
        };
        if settings.max_queued_jobs_per_user == Some(0) {
            bail!("max_queued_jobs_per_user must be at least 1 (leave it out for no quota)");
        }
        if settings.max_open_streams == 0 || settings.max_open_streams_per_caller == Some(0) {
            bail!("max_open_streams and max_open_streams_per_caller must be at least 1");
        }
        if settings.job_log_max_bytes < MIN_JOB_LOG_MAX_BYTES {
            bail!("job_log_max_bytes must be at least {MIN_JOB_LOG_MAX_BYTES}");
        }
        if settings.heartbeat_interval.is_zero() || settings.lease_check_interval.is_zero() {
            bail!("heartbeat and lease-check intervals must be above 0");
        }
        if settings.lease_timeout <= settings.heartbeat_interval {
            bail!("lease_timeout_seconds must exceed heartbeat_interval_seconds");
        }
        if settings.http_read_timeout.is_zero() || settings.max_connections == Some(0) {
            bail!("http_read_timeout_seconds and max_connections must be above 0");
        }
        if settings.default_max_attempts == 0 {
            bail!("default_max_attempts must be at least 1");
        }
        let settings = Settings {
            documents_root: settings
                .documents_root
                .as_deref()
                .map(|root| documents_root(root, &settings.data_dir))
                .transpose()?,
            ..settings
        };
        if let (Some(root), ArtifactLocation::Directory(dir)) =
            (&settings.documents_root, &settings.artifacts)
        {
            let dir = resolved(dir)
                .with_context(|| format!("cannot resolve artifacts {}", dir.display()))?;
            if dir.starts_with(root) || root.starts_with(&dir) {
                bail!(
                    "the artifacts directory {} and documents_root {} overlap: jobs could read \
                     other users' artifacts; keep them apart",
                    dir.display(),
                    root.display()
                );
            }
        }
        for (name, job_type) in &settings.job_types {
            if job_type.command.as_ref().is_some_and(|c| c.is_empty()) {
                bail!("job type {name}: command must name a program");
            }
            if job_type.max_attempts == Some(0) {
                bail!("job type {name}: max_attempts must be at least 1");
            }
            if job_type.max_concurrent_per_key == Some(0) || job_type.max_concurrent == Some(0) {
                bail!(
                    "job type {name}: max_concurrent_per_key and max_concurrent must be at \
                     least 1 (leave them out for no limit)"
                );
            }
            if let Some(pointer) = &job_type.concurrency_key
                && !(pointer.is_empty() || pointer.starts_with('/'))
            {
                bail!(
                    "job type {name}: concurrency_key must be a JSON pointer into the \
                     parameters, such as \"/document_set\""
                );
            }
            if let Some(rate) = &job_type.rate_limit
                && (rate.count == 0 || !(rate.per_seconds > 0.0 && rate.per_seconds <= 86400.0))
            {
                bail!(
                    "job type {name}: rate_limit needs count of at least 1 and per_seconds \
                     above 0, at most a day"
                );
            }
            if job_type.is_remote() && job_type.command.is_some() {
                bail!(
                    "job type {name}: remote = true and a command exclude each other \
                     (remote workers run it, not a command)"
                );
            }
            if job_type
                .expires_in_seconds
                .is_some_and(|s| !(s > 0.0 && s <= 366.0 * 86400.0))
            {
                bail!("job type {name}: expires_in_seconds must be above 0 and at most a year");
            }
            if job_type.is_remote() && !valid_remote_type(name) {
                bail!(
                    "job type {name:?}: a remote type's name must be 1 to {MAX_REMOTE_TYPE_LEN} \
                     of A-Z a-z 0-9 _ . - (it is part of Redis key names)"
                );
            }
        }
        Ok(settings)
    }
}

/// The origins of setting `name`, each checked to be `http` or `https`
/// `://` a host and an optional port, nothing more, and normalised as a
/// browser sends its `Origin`: lower case, the scheme's default port left
/// out. Empty entries (from an empty environment variable) are skipped.
fn origins(name: &str, given: Option<Vec<String>>) -> anyhow::Result<Vec<String>> {
    let mut normalised = Vec::new();
    for entry in given.unwrap_or_default() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let origin = normalise_origin(entry).with_context(|| {
            format!(
                "{name}: '{entry}' is not an origin such as https://app.example.com \
                 (a scheme, http or https, and a host with an optional port; no path)"
            )
        })?;
        if !normalised.contains(&origin) {
            normalised.push(origin);
        }
    }
    Ok(normalised)
}

/// `origin` as a browser would send it in `Origin` (lower case, no default
/// port), or `None` if it is not an `http`/`https` origin.
pub(crate) fn normalise_origin(origin: &str) -> Option<String> {
    let uri: axum::http::Uri = origin.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if !(path.is_empty() || path == "/") || authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The host names of `allowed_hosts`, lower case: `*`, `*.domain`, or a
/// name or address without a port (brackets around an IPv6 address).
fn hosts(given: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in given {
        let name = entry.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let bare = name.strip_prefix("*.").unwrap_or(&name);
        let valid = name == "*"
            || (bare.starts_with('[')
                && bare.ends_with(']')
                && bare[1..bare.len() - 1]
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok())
            || (!bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
        if !valid {
            bail!(
                "allowed_hosts: '{entry}' is not a host name (such as jobs.example.com, \
                 *.example.com or *; no scheme, port or path)"
            );
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The submission rate from its two settings: a rate above 0 (at most a
/// million a second), and a burst of at least 1, by default the rate
/// rounded up. A burst without a rate is an error, not ignored.
fn submit_rate(rate: Option<f64>, burst: Option<u32>) -> anyhow::Result<Option<SubmitRate>> {
    let Some(per_second) = rate else {
        if burst.is_some() {
            bail!("submit_burst_per_user needs submit_rate_per_user");
        }
        return Ok(None);
    };
    if !(per_second > 0.0 && per_second <= 1e6) {
        bail!("submit_rate_per_user must be above 0 and at most 1000000, got {per_second}");
    }
    let burst = burst.unwrap_or(per_second.ceil() as u32);
    if burst == 0 {
        bail!("submit_burst_per_user must be at least 1");
    }
    Ok(Some(SubmitRate { per_second, burst }))
}

/// The documents root `root`, canonical, checked to be an existing
/// directory that neither contains the data directory nor lies inside it:
/// a job that may read the root must not reach the store or other users'
/// artifacts through it.
fn documents_root(root: &Path, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let canonical = std::fs::canonicalize(root)
        .ok()
        .filter(|path| path.is_dir())
        .with_context(|| {
            format!(
                "documents_root {} is not an existing directory",
                root.display()
            )
        })?;
    let data = resolved(data_dir)
        .with_context(|| format!("cannot resolve data_dir {}", data_dir.display()))?;
    if data.starts_with(&canonical) {
        bail!(
            "the data directory {} is inside documents_root {}: jobs could read the store \
             and other users' artifacts; choose a documents root that does not contain it",
            data_dir.display(),
            root.display()
        );
    }
    if canonical.starts_with(&data) {
        bail!(
            "documents_root {} is inside the data directory {}: jobs could read the store \
             and other users' artifacts",
            root.display(),
            data_dir.display()
        );
    }
    Ok(canonical)
}

/// `path` absolute, its longest existing part with symbolic links resolved
/// and the rest (which may not exist yet, as a data directory before the
/// first start) appended with `.` and `..` resolved lexically.
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = std::path::absolute(path)?;
    let mut rest = Vec::new();
    let mut base = loop {
        match std::fs::canonicalize(&existing) {
            Ok(base) => break base,
            Err(_) => match existing.parent() {
                Some(parent) => {
                    // `file_name` is `None` for a last part `..`.
                    let name = existing.file_name().unwrap_or(OsStr::new(".."));
                    rest.push(name.to_owned());
                    existing = parent.to_path_buf();
                }
                // The file system's root: nothing left to resolve.
                None => break existing,
            },
        }
    };
    for part in rest.iter().rev() {
        match part.to_str() {
            Some("..") => {
                base.pop();
            }
            Some(".") => {}
            _ => base.push(part),
        }
    }
    Ok(base)
}

impl SettingsArgs {
    /// Each field of `self` if set, else `lower`'s.
    fn over(self, lower: SettingsArgs) -> SettingsArgs {
        SettingsArgs {
            bind: self.bind.or(lower.bind),
            metrics_bind: self.metrics_bind.or(lower.metrics_bind),
            store: self.store.or(lower.store),
            data_dir: self.data_dir.or(lower.data_dir),
            redis_prefix: self.redis_prefix.or(lower.redis_prefix),
            workers: self.workers.or(lower.workers),
            global_max_concurrent_jobs: self
                .global_max_concurrent_jobs
                .or(lower.global_max_concurrent_jobs),
            per_user_max_concurrent_jobs: self
                .per_user_max_concurrent_jobs
                .or(lower.per_user_max_concurrent_jobs),
            heartbeat_interval_seconds: self
                .heartbeat_interval_seconds
                .or(lower.heartbeat_interval_seconds),
            lease_timeout_seconds: self.lease_timeout_seconds.or(lower.lease_timeout_seconds),
            lease_check_interval_seconds: self
                .lease_check_interval_seconds
                .or(lower.lease_check_interval_seconds),
            stale_worker_seconds: self.stale_worker_seconds.or(lower.stale_worker_seconds),
            max_interruptions: self.max_interruptions.or(lower.max_interruptions),
            cleanup_interval_seconds: self
                .cleanup_interval_seconds
                .or(lower.cleanup_interval_seconds),
            completed_retention_seconds: self
                .completed_retention_seconds
                .or(lower.completed_retention_seconds),
            failed_retention_seconds: self
                .failed_retention_seconds
                .or(lower.failed_retention_seconds),
            audit_retention_seconds: self
                .audit_retention_seconds
                .or(lower.audit_retention_seconds),
            orphaned_lock_seconds: self.orphaned_lock_seconds.or(lower.orphaned_lock_seconds),
            cancel_grace_seconds: self.cancel_grace_seconds.or(lower.cancel_grace_seconds),
            shutdown_grace_seconds: self.shutdown_grace_seconds.or(lower.shutdown_grace_seconds),
            default_max_attempts: self.default_max_attempts.or(lower.default_max_attempts),
            retry_backoff_seconds: self.retry_backoff_seconds.or(lower.retry_backoff_seconds),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            http_read_timeout_seconds: self
                .http_read_timeout_seconds
                .or(lower.http_read_timeout_seconds),
            max_connections: self.max_connections.or(lower.max_connections),
            documents_root: self.documents_root.or(lower.documents_root),
            artifacts: self.artifacts.or(lower.artifacts),
            idempotency_ttl_seconds: self
                .idempotency_ttl_seconds
                .or(lower.idempotency_ttl_seconds),
            sqlite_synchronous: self.sqlite_synchronous.or(lower.sqlite_synchronous),
            job_log_max_bytes: self.job_log_max_bytes.or(lower.job_log_max_bytes),
            auth: self.auth.or(lower.auth),
            allowed_origins: self.allowed_origins.or(lower.allowed_origins),
            allowed_hosts: self.allowed_hosts.or(lower.allowed_hosts),
            cors_allowed_origins: self.cors_allowed_origins.or(lower.cors_allowed_origins),
            max_queued_jobs_per_user: self
                .max_queued_jobs_per_user
                .or(lower.max_queued_jobs_per_user),
            submit_rate_per_user: self.submit_rate_per_user.or(lower.submit_rate_per_user),
            submit_burst_per_user: self.submit_burst_per_user.or(lower.submit_burst_per_user),
            max_open_streams: self.max_open_streams.or(lower.max_open_streams),
            max_open_streams_per_caller: self
                .max_open_streams_per_caller
                .or(lower.max_open_streams_per_caller),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let s = Settings::default();
        assert_eq!(s.global_max_concurrent_jobs, 10);
        assert_eq!(s.per_user_max_concurrent_jobs, 3);
        assert_eq!(s.cleanup_interval, Duration::from_secs(600));
        assert_eq!(s.completed_retention, Duration::from_secs(86400));
        assert_eq!(s.failed_retention, Duration::from_secs(7200));
        assert_eq!(s.audit_retention, Duration::from_secs(30 * 86400));
        assert_eq!(s.stale_worker_after, Duration::from_secs(300));
        assert_eq!(s.workers, 10);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.toml");
        std::fs::write(
            &path,
            "global_max_concurrent_jobs = 4\nper_user_max_concurrent_jobs = 2\n\
             [job_types.echo]\ncommand = [\"cat\"]\n",
        )
        .unwrap();
        let args = SettingsArgs {
            global_max_concurrent_jobs: Some(7),
            ..SettingsArgs::default()
        };
        let s = Settings::load(args, Some(&path)).unwrap();
        assert_eq!(s.global_max_concurrent_jobs, 7);
        assert_eq!(s.per_user_max_concurrent_jobs, 2);
        assert_eq!(s.job_types["echo"].command, Some(vec!["cat".to_string()]));
    }

    #[test]
    fn zero_attempts_are_an_error_not_one() {
        let args = SettingsArgs {
            default_max_attempts: Some(0),
            ..SettingsArgs::default()
        };
        let error = Settings::load(args, None).expect_err("0 attempts is refused");
        assert!(
            error.to_string().contains("default_max_attempts"),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.toml");
        std::fs::write(&path, "[job_types.sleep]\nmax_attempts = 0\n").unwrap();
        let error = Settings::load(SettingsArgs::default(), Some(&path))
            .expect_err("0 attempts of a job type is refused");
        assert!(error.to_string().contains("max_attempts"), "{error}");
    }

    #[test]
    fn limits_per_type_and_user_weights_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Settings::load(SettingsArgs::default(), Some(&path))
        };
        let s = load(
            "[job_types.sleep]\nconcurrency_key = \"/document_set\"\n\
             max_concurrent_per_key = 2\nmax_concurrent = 5\n\
             rate_limit = { count = 10, per_seconds = 1, per_key = true }\n\
             [users.acme]\nweight = 3\n",
        )
        .unwrap();
        let sleep = &s.job_types["sleep"];
        assert_eq!(sleep.concurrency_key.as_deref(), Some("/document_set"));
        assert_eq!(
            (sleep.max_concurrent_per_key, sleep.max_concurrent),
            (Some(2), Some(5))
        );
        let rate = sleep.rate_limit.unwrap();
        assert_eq!(
            (rate.count, rate.per_seconds, rate.per_key),
            (10, 1.0, true)
        );
        assert_eq!(s.user_weights["acme"], 3);
        for bad in [
            "[job_types.sleep]\nmax_concurrent_per_key = 0\n",
            "[job_types.sleep]\nmax_concurrent = 0\n",
            "[job_types.sleep]\nconcurrency_key = \"document_set\"\n",
            "[job_types.sleep]\nrate_limit = { count = 0, per_seconds = 1 }\n",
            "[job_types.sleep]\nrate_limit = { count = 1, per_seconds = 0 }\n",
            "[users.acme]\nweight = 0\n",
            "[users.acme]\nshare = 2\n",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_remote_type_has_no_command_and_a_key_safe_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Settings::load(SettingsArgs::default(), Some(&path))
        };
        let s = load("[job_types.extraction]\nremote = true\nmax_attempts = 3\n").unwrap();
        assert!(s.job_types["extraction"].is_remote());
        assert_eq!(s.job_types["extraction"].max_attempts, Some(3));

        let error = load("[job_types.echo]\nremote = true\ncommand = [\"cat\"]\n")
            .expect_err("remote with a command is refused");
        assert!(error.to_string().contains("exclude"), "{error}");

        let long = "x".repeat(65);
        for name in ["\"gpu:ocr\"", "\"a b\"", "\"\"", long.as_str()] {
            let error = load(&format!("[job_types.{name}]\nremote = true\n"))
                .expect_err("a name unfit for a key is refused");
            assert!(error.to_string().contains("Redis key"), "{name}: {error}");
        }
        // The same names are fine for a type that is not remote.
        assert!(load("[job_types.\"a b\"]\ncommand = [\"cat\"]\n").is_ok());
    }

    #[test]
    fn an_artifacts_directory_and_the_documents_root_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        std::fs::create_dir(&docs).unwrap();
        let with = |artifacts: &Path| {
            Settings::from_args(
                SettingsArgs {
                    data_dir: Some(dir.path().join("data")),
                    documents_root: Some(docs.clone()),
                    artifacts: Some(artifacts.display().to_string()),
                    ..SettingsArgs::default()
                },
                BTreeMap::new(),
            )
        };
        for inside in [docs.join("artifacts"), dir.path().to_path_buf()] {
            let error = with(&inside).unwrap_err().to_string();
            assert!(error.contains("overlap"), "{error}");
        }
        assert!(with(&dir.path().join("artifacts")).is_ok());
    }

    #[test]
    fn the_documents_root_is_off_by_default_and_never_holds_the_data_dir() {
        assert_eq!(Settings::default().documents_root, None);
        let dir = tempfile::tempdir().unwrap();
        let load = |root: &Path, data: &Path| {
            Settings::load(
                SettingsArgs {
                    documents_root: Some(root.to_owned()),
                    data_dir: Some(data.to_owned()),
                    ..SettingsArgs::default()
                },
                None,
            )
        };
        let docs = dir.path().join("docs");
        std::fs::create_dir(&docs).unwrap();
        let data = dir.path().join("data");
        let s = load(&docs, &data).unwrap();
        assert_eq!(s.documents_root, Some(docs.canonicalize().unwrap()));
        for (root, data, message) in [
            (dir.path().to_owned(), data.clone(), "inside documents_root"),
            (
                docs.clone(),
                docs.join("x/../data"),
                "inside documents_root",
            ),
            (
                docs.clone(),
                dir.path().join("x/../docs/d"),
                "inside documents_root",
            ),
            (
                docs.clone(),
                dir.path().to_owned(),
                "inside the data directory",
            ),
            (
                dir.path().join("none"),
                data.clone(),
                "not an existing directory",
            ),
        ] {
            let error = load(&root, &data).expect_err("refused");
            assert!(
                error.to_string().contains(message),
                "{root:?} {data:?}: {error}"
            );
        }
    }

    #[test]
    fn origins_and_hosts_are_lists_checked_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.toml");
        std::fs::write(
            &path,
            "allowed_origins = [\"https://App.Example.com:443\", \"http://localhost:3000/\"]\n\
             allowed_hosts = [\"Jobs.Example.com.\", \"*.internal\"]\n\
             cors_allowed_origins = [\"https://app.example.com\"]\n",
        )
        .unwrap();
        let s = Settings::load(SettingsArgs::default(), Some(&path)).unwrap();
        assert_eq!(
            s.allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(
            s.allowed_hosts,
            Some(vec!["jobs.example.com".to_owned(), "*.internal".to_owned()])
        );
        assert_eq!(s.cors_allowed_origins, ["https://app.example.com"]);
        let d = Settings::default();
        assert!(d.allowed_origins.is_empty() && d.cors_allowed_origins.is_empty());
        assert_eq!(d.allowed_hosts, None);

        // Flags (and their environment variables) are comma-separated.
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let parsed = <Command as clap::Parser>::try_parse_from([
            "jobd",
            "--allowed-hosts",
            "a.example,b.example",
            "--cors-allowed-origins",
            "https://a.example",
        ])
        .unwrap();
        let s = Settings::load(parsed.settings, None).unwrap();
        assert_eq!(
            s.allowed_hosts,
            Some(vec!["a.example".to_owned(), "b.example".to_owned()])
        );
        assert_eq!(s.cors_allowed_origins, ["https://a.example"]);

        for origins in [
            "*",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "null",
        ] {
            for set in [
                |a: &mut SettingsArgs, v: Vec<String>| a.allowed_origins = Some(v),
                |a: &mut SettingsArgs, v: Vec<String>| a.cors_allowed_origins = Some(v),
            ] {
                let mut args = SettingsArgs::default();
                set(&mut args, vec![origins.to_owned()]);
                assert!(Settings::load(args, None).is_err(), "{origins}");
            }
        }
        for hosts in [
            "https://jobs.example.com",
            "jobs.example.com:8000",
            "a/b",
            "*x",
        ] {
            let args = SettingsArgs {
                allowed_hosts: Some(vec![hosts.to_owned()]),
                ..SettingsArgs::default()
            };
            assert!(Settings::load(args, None).is_err(), "{hosts}");
        }
    }

    #[test]
    fn only_loopback_or_a_chosen_mode_may_serve() {
        let on = |bind: &str, auth: Option<AuthMode>| {
            Settings::from_args(
                SettingsArgs {
                    bind: Some(bind.parse().unwrap()),
                    auth,
                    ..SettingsArgs::default()
                },
                BTreeMap::new(),
            )
            .unwrap()
            .check_exposure()
        };
        assert!(on("127.0.0.1:8000", None).is_ok());
        assert!(on("[::1]:8000", None).is_ok());
        assert!(on("0.0.0.0:8000", None).is_err());
        assert!(on("0.0.0.0:8000", Some(AuthMode::None)).is_ok());
        assert!(on("0.0.0.0:8000", Some(AuthMode::Token)).is_ok());
        assert!(AdminToken::new("short").is_err());
        assert_eq!(
            format!("{:?}", AdminToken::new(&"x".repeat(40)).unwrap()),
            "AdminToken(..)"
        );
    }

    #[test]
    fn backpressure_settings_are_off_or_generous_by_default_and_validated() {
        let s = Settings::default();
        assert_eq!(s.max_queued_jobs_per_user, None);
        assert_eq!(s.submit_rate, None);
        assert_eq!(s.max_open_streams, DEFAULT_MAX_OPEN_STREAMS);
        assert_eq!(s.max_open_streams_per_caller, None);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Settings::load(SettingsArgs::default(), Some(&path))
        };
        let s = load(
            "max_queued_jobs_per_user = 100
submit_rate_per_user = 2.5
             max_open_streams = 50
max_open_streams_per_caller = 5
",
        )
        .unwrap();
        assert_eq!(s.max_queued_jobs_per_user, Some(100));
        assert_eq!(
            s.submit_rate,
            Some(SubmitRate {
                per_second: 2.5,
                burst: 3
            })
        );
        assert_eq!(
            (s.max_open_streams, s.max_open_streams_per_caller),
            (50, Some(5))
        );
        for (text, name) in [
            (
                "max_queued_jobs_per_user = 0
",
                "max_queued_jobs_per_user",
            ),
            (
                "submit_rate_per_user = 0.0
",
                "submit_rate_per_user",
            ),
            (
                "submit_burst_per_user = 4
",
                "submit_burst_per_user",
            ),
            (
                "submit_rate_per_user = 1.0
submit_burst_per_user = 0
",
                "submit_burst_per_user",
            ),
            (
                "max_open_streams = 0
",
                "max_open_streams",
            ),
            (
                "max_open_streams_per_caller = 0
",
                "max_open_streams_per_caller",
            ),
        ] {
            let error = load(text).expect_err(text);
            assert!(error.to_string().contains(name), "{text}: {error}");
        }
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.toml");
        std::fs::write(&path, "global_max_jobs = 4\n").unwrap();
        assert!(Settings::load(SettingsArgs::default(), Some(&path)).is_err());
    }
}
