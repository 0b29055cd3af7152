//! The application in-process: the real `api::router` on a real store in a
//! temporary directory, driven with tower's `oneshot` (axum's testing
//! pattern). No listener, no `jobd` process, no worker: for the checks that
//! need neither a second process nor a job run. Checks that do not depend
//! on the store use [`app`] (SQLite) and run once.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, Response};
use futures::StreamExt;
use jobd::api::AppState;
use jobd::api::backpressure::Backpressure;
use jobd::api::monitor::ProcessMonitor;
use jobd::config::Synchronous;
use jobd::config::{ArtifactLocation, Settings, StoreConfig};
use jobd::events::EventBus;
use jobd::model::Clock;
use jobd::pipeline::{self, Dirs};
use jobd::runtime::{Registry, builtin};
use jobd::store::Store;
use jobd::store::redis::RedisStore;
use jobd::store::sqlite::SqliteStore;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::support::{RedisServer, StoreKind};

/// The router on its own store; the store (and its server, for Redis) lives
/// as long as this, and streams and the dashboard producer end on drop.
pub struct App {
    router: Router,
    /// The state the router was built on.
    pub state: AppState,
    redis: Option<RedisServer>,
    _dir: tempfile::TempDir,
}

/// The app on a fresh SQLite store with default settings.
pub async fn app() -> App {
    App::with(StoreKind::Sqlite, |_| {})
        .await
        .expect("SQLite is always available")
}

impl App {
    /// The app on a fresh store of `kind` with default settings; `None`
    /// when Redis is wanted but not installed (see [`RedisServer::start`]).
    pub async fn on(kind: StoreKind) -> Option<App> {
        App::with(kind, |_| {}).await
    }

    /// The app on a fresh store of `kind`, with settings adjusted by `adjust`.
    pub async fn with(kind: StoreKind, adjust: impl FnOnce(&mut Settings)) -> Option<App> {
        let dir = tempfile::tempdir().expect("temp dir");
        let redis = match kind {
            StoreKind::Sqlite => None,
            StoreKind::Redis => Some(RedisServer::start()?),
        };
        let mut settings = Settings {
            data_dir: dir.path().join("data"),
            // As the process-level tests run: no fsync per commit.
            sqlite_synchronous: Synchronous::Normal,
            ..Settings::default()
        };
        adjust(&mut settings);
        let bus = EventBus::new();
        let store: Arc<dyn Store> = match &redis {
            None => SqliteStore::open(
                &settings.data_dir,
                settings.sqlite_synchronous,
                bus.clone(),
                Clock::system(),
                settings.max_queued_jobs_per_user,
            )
            .await
            .expect("open SQLite store"),
            Some(server) => {
                let prefix = format!("a{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                settings.store = StoreConfig::Redis {
                    url: server.url.clone(),
                    prefix: prefix.clone(),
                };
                // One process: its own directory is every node's.
                if settings.artifacts == ArtifactLocation::Default {
                    settings.artifacts =
                        ArtifactLocation::Directory(settings.data_dir.join("artifacts"));
                }
                RedisStore::open(
                    &server.url,
                    &prefix,
                    bus.clone(),
                    settings.orphaned_lock_after,
                    Clock::system(),
                    settings.max_queued_jobs_per_user,
                )
                .await
                .expect("open Redis store")
            }
        };
        let dirs = Dirs::from_settings(&settings).expect("artifact store");
        let builtins = builtin::handlers()
            .into_iter()
            .chain(pipeline::handlers(&dirs));
        let registry = Registry::from_settings(&settings, builtins).expect("registry");
        let backpressure = Arc::new(Backpressure::new(&settings));
        let state = AppState {
            audit: jobd::api::audit::AuditLog::start(store.clone()),
            store,
            bus,
            settings: Arc::new(settings),
            registry: Arc::new(registry),
            artifacts: dirs.artifacts,
            monitor: Arc::new(ProcessMonitor::new()),
            shutdown: CancellationToken::new(),
            backpressure,
        };
        Some(App {
            router: jobd::api::router(state.clone()),
            state,
            redis,
            _dir: dir,
        })
    }

    /// The Redis server of an app on Redis.
    pub fn redis(&mut self) -> &mut RedisServer {
        self.redis.as_mut().expect("an app on Redis")
    }

    /// A connection of its own to the app's Redis, and the app's key
    /// prefix (without the braces of its hash tag).
    pub async fn raw_redis(&mut self) -> (redis::aio::MultiplexedConnection, String) {
        let url = self.redis().url.clone();
        let StoreConfig::Redis { prefix, .. } = &self.state.settings.store else {
            panic!("an app on Redis");
        };
        let prefix = prefix.clone();
        let client = redis::Client::open(url.as_str()).expect("redis client");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        (conn, prefix)
    }

    /// Sends one request through the router.
    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// `method path` with a raw body; returns the status and the body as
    /// JSON (`Null` when it is not JSON).
    pub async fn call(&self, method: &str, path: &str, body: impl Into<Body>) -> (u16, Value) {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path)
            .body(body.into())
            .expect("request");
        let response = self.send(request).await;
        let status = response.status().as_u16();
        let bytes = body_bytes(response).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GET returning (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, Body::empty()).await
    }

    /// POST of a JSON body (or none) returning (status, JSON body).
    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.call("POST", path, body).await
    }

    /// Submits a job and returns its JSON (asserting 201).
    pub async fn submit(&self, body: Value) -> Value {
        let (status, job) = self.post("/api/v1/jobs", Some(body)).await;
        assert_eq!(status, 201, "submit failed: {job}");
        job
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}

/// The whole body of a response.
pub async fn body_bytes(response: Response<Body>) -> Bytes {
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("response body")
}

/// The events of a Server-Sent Events body, as (event name, data), in order.
pub fn sse_events(body: Body) -> impl futures::Stream<Item = (String, String)> {
    let chunks = body.into_data_stream();
    futures::stream::unfold(
        (chunks, String::new()),
        |(mut chunks, mut buffer)| async move {
            loop {
                if let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let name = block
                        .lines()
                        .find_map(|l| l.strip_prefix("event:"))
                        .map(|n| n.trim().to_owned());
                    let data: Vec<&str> = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    match name {
                        Some(name) => return Some(((name, data.join("\n")), (chunks, buffer))),
                        None => continue, // a keep-alive comment
                    }
                }
                let chunk = chunks.next().await?.ok()?;
                buffer.push_str(std::str::from_utf8(&chunk).ok()?);
            }
        },
    )
}

/// The log lines written on the test's thread while this lives. Tests that
/// use it run on the current-thread runtime (`#[tokio::test]`'s default),
/// so every task of an in-process app logs on that thread.
pub struct Logs {
    buffer: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    /// Starts capturing (INFO and above, without colours).
    pub fn capture() -> Logs {
        Logs::capture_at(tracing::Level::INFO)
    }

    /// Starts capturing `level` and above (without colours), events with
    /// the fields of the spans they happen in.
    pub fn capture_at(level: tracing::Level) -> Logs {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || LogWriter(sink.clone()))
            .with_ansi(false)
            .with_max_level(level)
            .finish();
        Logs {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lines so far that contain every one of `needles`.
    pub fn matching(&self, needles: &[&str]) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .collect()
    }
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
