//! `jobd serve` and `jobd worker`: open the store, start maintenance, the
//! worker runtime and (for `serve`) the HTTP API, and shut them down in
//! order: stop claiming and drain running jobs, then close the API, then
//! stop maintenance.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::audit::AuditLog;
use crate::api::backpressure::Backpressure;
use crate::api::monitor::ProcessMonitor;
use crate::api::{self, AppState};
use crate::config::{ADMIN_TOKEN_ENV, AuthMode, Settings, StoreConfig};
use crate::events::EventBus;
use crate::model::Clock;
use crate::pipeline::artifacts::ArtifactStore;
use crate::pipeline::{self, Dirs};
use crate::runtime::{Registry, Worker, builtin, maintenance, memory, process};
use crate::store::Store;
use crate::store::redis::RedisStore;
use crate::store::sqlite::SqliteStore;

/// The store, bus and job types every process role needs.
struct Core {
    store: Arc<dyn Store>,
    bus: EventBus,
    registry: Arc<Registry>,
    /// Where the pipeline keeps artifacts.
    artifacts: ArtifactStore,
    /// The process's open-file limit, raised to its hard limit.
    open_files: u64,
}

async fn open(settings: &Settings) -> anyhow::Result<Core> {
    let open_files = process::raise_open_file_limit().context("cannot read the open-file limit")?;
    memory::spawn_trimmer();
    let dirs = Dirs::from_settings(settings)?;
    let pipeline = pipeline::handlers(&dirs);
    let registry = Arc::new(Registry::from_settings(
        settings,
        builtin::handlers().into_iter().chain(pipeline),
    )?);
    let bus = EventBus::new();
    let store: Arc<dyn Store> = match &settings.store {
        StoreConfig::Sqlite => SqliteStore::open(
            &settings.data_dir,
            settings.sqlite_synchronous,
            bus.clone(),
            Clock::system(),
            settings.max_queued_jobs_per_user,
        )
        .await
        .with_context(|| format!("cannot open the store in {}", settings.data_dir.display()))?,
        StoreConfig::Redis { url, prefix } => RedisStore::open(
            url,
            prefix,
            bus.clone(),
            settings.orphaned_lock_after,
            Clock::system(),
            settings.max_queued_jobs_per_user,
        )
        .await
        .with_context(|| format!("cannot connect to {url}"))?,
    };
    Ok(Core {
        store,
        bus,
        registry,
        artifacts: dirs.artifacts,
        open_files,
    })
}

/// Starts the store's maintenance and the pipeline's artifact sweep (after
/// each retention pass's interval); both end when `stop` fires.
fn spawn_maintenance(
    core: &Core,
    settings: &Arc<Settings>,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let store = maintenance::spawn(core.store.clone(), settings.clone(), stop.clone());
    // An artifact younger than a minute may be the input of a job being
    // submitted; with a shorter retention, no job lives that long anyway.
    let grace = Duration::from_secs(60)
        .min(settings.completed_retention)
        .min(settings.failed_retention);
    let artifacts = pipeline::artifacts::spawn_sweeper(
        core.store.clone(),
        core.artifacts.clone(),
        settings.cleanup_interval,
        grace,
        stop.clone(),
    );
    tokio::spawn(async move {
        let _ = tokio::join!(store, artifacts);
    })
}

/// Runs the API (and, unless `settings.workers` is 0, workers) until
/// `shutdown` fires. Prints `jobd listening on http://ADDR` once bound.
pub async fn serve(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    settings.check_exposure()?;
    if settings.auth == AuthMode::None && !settings.bind.ip().is_loopback() {
        tracing::warn!(
            bind = %settings.bind,
            "auth = none on a non-loopback address: anyone who can reach it may act as any user"
        );
    }
    if settings.auth == AuthMode::Token && settings.admin_token.is_none() {
        tracing::info!("auth = token without {ADMIN_TOKEN_ENV}: only stored tokens are accepted");
    }
    let settings = Arc::new(settings);
    let core = open(&settings).await?;
    let listener = TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("cannot listen on {}", settings.bind))?;
    let address = listener.local_addr()?;

    let maintenance_stop = CancellationToken::new();
    let maintenance = spawn_maintenance(&core, &settings, &maintenance_stop);
    let worker = (settings.workers > 0).then(|| {
        Worker::start(
            core.store.clone(),
            core.bus.clone(),
            settings.clone(),
            core.registry.clone(),
        )
    });
    let http_stop = CancellationToken::new();
    let audit = AuditLog::start(core.store.clone());
    let state = AppState {
        audit: audit.clone(),
        store: core.store.clone(),
        bus: core.bus.clone(),
        settings: settings.clone(),
        registry: core.registry.clone(),
        artifacts: core.artifacts.clone(),
        monitor: Arc::new(ProcessMonitor::new()),
        shutdown: http_stop.clone(),
        backpressure: Arc::new(Backpressure::new(&settings)),
    };
    api::schedules::put_configured(&state).await?;
    let mut http = tokio::spawn(api::serve(
        listener,
        state,
        core.open_files,
        http_stop.clone(),
    ));
    println!("jobd listening on http://{address}");
    tracing::info!(%address, store = core.store.kind(), workers = settings.workers, "jobd serving");

    tokio::select! {
        _ = shutdown.cancelled() => {}
        result = &mut http => {
            // The server stopped on its own: an I/O error.
            result.context("HTTP server task failed")??;
        }
    }
    tracing::info!("shutting down");
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    http_stop.cancel();
    if !http.is_finished() {
        http.await.context("HTTP server task failed")??;
    }
    // The API is closed: no entry comes after these.
    if let Err(e) = audit.flush().await {
        tracing::error!(error = %crate::store::error_chain(&e), "audit entries lost at shutdown");
    }
    maintenance_stop.cancel();
    let _ = maintenance.await;
    Ok(())
}

/// Runs workers only (no API) until `shutdown` fires, with their own
/// `/metrics` on `settings.metrics_bind` if given. Prints `jobd worker ID
/// started` once running (and `; metrics on http://ADDR/metrics`).
pub async fn work(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    if settings.workers == 0 {
        anyhow::bail!("jobd worker needs --workers of at least 1");
    }
    let settings = Arc::new(settings);
    let metrics_listener = match settings.metrics_bind {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for metrics"))?,
        ),
        None => None,
    };
    let core = open(&settings).await?;
    let maintenance_stop = CancellationToken::new();
    let maintenance = spawn_maintenance(&core, &settings, &maintenance_stop);
    let worker = Worker::start(
        core.store.clone(),
        core.bus.clone(),
        settings.clone(),
        core.registry.clone(),
    );
    let metrics_stop = CancellationToken::new();
    let mut served = String::new();
    let mut metrics = None;
    if let Some(listener) = metrics_listener {
        served = format!("; metrics on http://{}/metrics", listener.local_addr()?);
        let source = api::metrics::WorkerMetrics {
            bus: &core.bus,
            job_types: core.registry.names(),
            load: worker.load(),
        };
        metrics = Some(api::metrics::serve_worker_metrics(
            listener,
            source,
            metrics_stop.clone(),
        ));
    }
    println!("jobd worker {} started{served}", worker.id());
    shutdown.cancelled().await;
    worker.shutdown().await;
    metrics_stop.cancel();
    if let Some(metrics) = metrics {
        metrics.await.context("metrics server task failed")?;
    }
    maintenance_stop.cancel();
    let _ = maintenance.await;
    Ok(())
}
