//! What every handler shares.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::audit::AuditLog;
use super::backpressure::Backpressure;
use super::monitor::ProcessMonitor;
use crate::config::Settings;
use crate::events::EventBus;
use crate::pipeline::artifacts::ArtifactStore;
use crate::runtime::Registry;
use crate::store::Store;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The job store.
    pub store: Arc<dyn Store>,
    /// The process's change feed.
    pub bus: EventBus,
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Known job types (submissions of other types are refused).
    pub registry: Arc<Registry>,
    /// Where the pipeline keeps artifacts, which the API lists and serves.
    pub artifacts: ArtifactStore,
    /// CPU and memory sampling for stats.
    pub monitor: Arc<ProcessMonitor>,
    /// The audit recorder (`AuditLog::start` on the same store).
    pub audit: Arc<AuditLog>,
    /// Fired on shutdown: long-polls answer and streams end.
    pub shutdown: CancellationToken,
    /// This node's submission rate and caps on open streams.
    pub backpressure: Arc<Backpressure>,
}
