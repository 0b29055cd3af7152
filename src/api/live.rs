//! The dashboard's live feed: `GET /api/v1/jobs/queue/stream`, Server-Sent
//! Events carrying the queue statistics, the throughput history and the
//! worker registry every 2 s, and sooner when a job changes in this process
//! (at most every 300 ms), so the page never polls.
//!
//! One producer per router (and `serve` builds one router per process)
//! reads the store and builds each update once, whatever the number of
//! open dashboards: it starts with the first dashboard, publishes through a
//! `watch` channel that every stream reads (a slow dashboard skips to the
//! newest update instead of queueing old ones), and stops when the last
//! dashboard goes away. It also logs a store outage once, when it starts,
//! and once when it ends, rather than on every update of every dashboard.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::wrappers::WatchStream;

use super::backpressure::stream_slots::StreamSlot;
use super::error::{ApiError, ErrorBody};
use super::metrics::DASHBOARD_UPDATES;
use super::sse_schema::QueueStreamEvent;
use super::state::AppState;
use super::stats::{StatsError, current_stats, worker_list};
use super::throughput::ThroughputRing;
use super::watch::utf8_event_stream;
use crate::model::now_millis;

/// Period of the stream's updates when nothing changes.
pub(crate) const PERIOD: Duration = Duration::from_secs(2);

/// Shortest gap between two updates, however often jobs change.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(300);

/// One update: the batch of events every open dashboard receives.
type Update = Arc<Vec<Event>>;

/// What the streams read: the newest update, `None` until the first.
type Latest = watch::Sender<Option<Update>>;

/// The shared producer of a router's dashboard updates, started by the
/// first stream and replaced when it stopped for want of listeners.
/// Cheap to clone; the router hands it to the handler as an extension.
#[derive(Clone, Default)]
pub(crate) struct LiveFeed {
    latest: Arc<Mutex<Option<Latest>>>,
}

impl LiveFeed {
    /// A receiver of the updates, starting the producer if none runs.
    fn subscribe(&self, state: &AppState) -> watch::Receiver<Option<Update>> {
        // Only held to look at or replace the sender: never poisoned by a
        // panic in between.
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // With no receiver left the producer has stopped or is stopping
        // (it watches for exactly that), and with no sender but ours it
        // has ended: either way a new one takes over.
        let running = |s: &&Latest| s.receiver_count() > 0 && s.sender_count() > 1;
        if let Some(sender) = latest.as_ref().filter(running) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(None);
        tokio::spawn(produce(state.clone(), sender.clone()));
        *latest = Some(sender);
        receiver
    }
}

/// `GET /api/v1/jobs/queue/stream`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/queue/stream",
    tag = "queue",
    summary = "Live queue statistics (Server-Sent Events)",
    description = "Every 2 s, and within 300 ms of a job changing in this process, a batch of \
        three events: `stats` (data: `QueueStats`, as `/queue/stats` answers; \
        `stats_error` with `StatsUnavailable` instead while the store is unreachable), \
        `throughput` (data: `Throughput`) and `workers` (data: `WorkerList`; left out while \
        the store is unreachable). Keep-alive comments every 15 s.",
    responses(
        (status = 200, description = "An event stream (`text/event-stream; charset=utf-8`) of \
            `stats`, `throughput` and `workers` events; the schema is that of one event",
            content_type = "text/event-stream", body = QueueStreamEvent),
        (status = 429, description = "`TooManyStreamsError`: `max_open_streams` or \
            `max_open_streams_per_caller` reached; `Retry-After` in seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
pub(crate) async fn queue_stream(
    State(state): State<AppState>,
    Extension(feed): Extension<LiveFeed>,
    slot: StreamSlot,
) -> Result<impl IntoResponse, ApiError> {
    // The newest update at once (if there is one yet), then each new one.
    let updates = WatchStream::new(feed.subscribe(&state))
        .filter_map(futures::future::ready)
        .flat_map(|update| futures::stream::iter(update.as_ref().clone()))
        .map(Ok::<Event, Infallible>)
        .take_until(state.shutdown.clone().cancelled_owned());
    Ok(utf8_event_stream(Sse::new(slot.hold(updates)).keep_alive(
        KeepAlive::new().interval(Duration::from_secs(15)),
    )))
}

/// Builds updates until no stream listens or the server shuts down.
async fn produce(state: AppState, latest: Latest) {
    let mut changes = state.bus.subscribe_all();
    let mut feed_open = true;
    let mut last_sent: Option<Instant> = None;
    let mut dirty = false;
    let mut outage = Outage::default();
    loop {
        let next_tick = last_sent.map_or_else(Instant::now, |at| at + PERIOD);
        let earliest = last_sent.map_or_else(Instant::now, |at| at + MIN_GAP);
        tokio::select! {
            _ = tokio::time::sleep_until(next_tick) => {}
            _ = tokio::time::sleep_until(earliest), if dirty => {}
            change = changes.recv(), if feed_open && !dirty => {
                match change {
                    Ok(_) | Err(RecvError::Lagged(_)) => dirty = true,
                    Err(RecvError::Closed) => feed_open = false,
                }
                continue;
            }
            _ = latest.closed() => return,
            _ = state.shutdown.cancelled() => return,
        }
        dirty = false;
        // Changes that arrived meanwhile are covered by this update.
        while let Ok(_) | Err(TryRecvError::Lagged(_)) = changes.try_recv() {}
        let update = build(&state, &mut outage).await;
        latest.send_replace(Some(Arc::new(update)));
        last_sent = Some(Instant::now());
    }
}

/// Whether the store was failing at the last update, so that an outage is
/// logged when it starts and when it ends, not at every update.
#[derive(Default)]
struct Outage {
    ongoing: bool,
}

impl Outage {
    fn observe(&mut self, stats: &Result<impl Sized, StatsError>) {
        match (stats, self.ongoing) {
            (Err(error), false) => {
                self.ongoing = true;
                tracing::error!(
                    cause = error.0.cause().unwrap_or_default(),
                    "dashboard: store unavailable (logged again only once it is back)"
                );
            }
            (Ok(_), true) => {
                self.ongoing = false;
                tracing::info!("dashboard: store available again");
            }
            _ => {}
        }
    }
}

/// One batch of events: stats (or stats_error), throughput, workers.
async fn build(state: &AppState, outage: &mut Outage) -> Vec<Event> {
    ::metrics::counter!(DASHBOARD_UPDATES).increment(1);
    let mut events = Vec::with_capacity(3);
    let stats = current_stats(state).await;
    outage.observe(&stats);
    let store_up = stats.is_ok();
    match stats {
        Ok(stats) => events.push(json_event("stats", &stats)),
        Err(error) => events.push(json_event("stats_error", &error.body())),
    }
    let throughput = ThroughputRing::global().throughput(now_millis());
    events.push(json_event("throughput", &throughput));
    // No second call to a store that just failed (each one waits out its
    // reconnection attempts).
    if store_up && let Ok(workers) = worker_list(state).await {
        events.push(json_event("workers", &workers));
    }
    events
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Event::default().event(name).data(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::monitor::ProcessMonitor;
    use crate::config::Settings;
    use crate::events::EventBus;
    use crate::runtime::Registry;
    use crate::store::sqlite::SqliteStore;

    async fn state_on(dir: &std::path::Path) -> AppState {
        let settings = Settings::default();
        let bus = EventBus::new();
        let store = SqliteStore::open(
            dir,
            settings.sqlite_synchronous,
            bus.clone(),
            crate::model::Clock::system(),
            None,
        )
        .await
        .expect("store");
        let backpressure = Arc::new(crate::api::backpressure::Backpressure::new(&settings));
        AppState {
            audit: crate::api::audit::AuditLog::start(store.clone()),
            store,
            bus,
            settings: Arc::new(settings),
            registry: Arc::new(Registry::default()),
            artifacts: crate::pipeline::artifacts::ArtifactStore::in_directory(
                &dir.join("artifacts"),
                dir.join("scratch"),
            )
            .expect("artifacts"),
            monitor: Arc::new(ProcessMonitor::new()),
            shutdown: tokio_util::sync::CancellationToken::new(),
            backpressure,
        }
    }

    fn current(feed: &LiveFeed) -> Latest {
        feed.latest
            .lock()
            .expect("feed")
            .clone()
            .expect("a producer was started")
    }

    #[tokio::test]
    async fn dashboards_share_one_producer_that_stops_with_the_last() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = state_on(dir.path()).await;
        let feed = LiveFeed::default();
        let mut first = feed.subscribe(&state);
        let mut second = feed.subscribe(&state);
        let a = first
            .wait_for(Option::is_some)
            .await
            .expect("an update")
            .clone();
        let b = second
            .wait_for(Option::is_some)
            .await
            .expect("an update")
            .clone();
        let (Some(a), Some(b)) = (a, b) else {
            unreachable!("waited for Some")
        };
        assert!(Arc::ptr_eq(&a, &b), "both streams got the one update built");

        // Senders: the feed's, the producer's and this test's.
        let sender = current(&feed);
        assert_eq!(sender.sender_count(), 3);
        drop((first, second));
        tokio::time::timeout(Duration::from_secs(5), async {
            while sender.sender_count() > 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the producer to stop once nobody listens");

        let third = feed.subscribe(&state);
        let restarted = current(&feed);
        assert!(!restarted.same_channel(&sender), "a new producer");
        assert_eq!(restarted.sender_count(), 3);
        drop(third);
    }
}
