//! The dashboard's live feed: `GET /api/v1/jobs/queue/stream`, Server-Sent
//! Events carrying the queue statistics, the throughput history and the
//! worker registry every 2 s, and sooner when a job changes in this process
//! (at most every 300 ms), so the page never polls.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::metrics::DASHBOARD_UPDATES;
use super::stats::{current_stats, worker_list};
use super::throughput::ThroughputRing;
use crate::model::now_millis;

/// Period of the stream's updates when nothing changes.
pub const PERIOD: Duration = Duration::from_secs(2);

/// Shortest gap between two updates, however often jobs change.
pub const MIN_GAP: Duration = Duration::from_millis(300);

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
        (status = 200, description = "An event stream of `stats`, `throughput` and `workers` events",
            content_type = "text/event-stream", body = String),
    )
)]
pub async fn queue_stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (sender, receiver) = mpsc::channel(8);
    tokio::spawn(feed(state, sender));
    Sse::new(ReceiverStream::new(receiver).map(Ok))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Sends updates until the client goes away or the server shuts down.
async fn feed(state: AppState, sender: mpsc::Sender<Event>) {
    let mut changes = state.bus.subscribe_all();
    let mut feed_open = true;
    let mut last_sent: Option<Instant> = None;
    let mut dirty = false;
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
            _ = sender.closed() => return,
            _ = state.shutdown.cancelled() => return,
        }
        dirty = false;
        // Changes that arrived meanwhile are covered by this update.
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
            changes.try_recv()
        {}
        for event in update(&state).await {
            if sender.send(event).await.is_err() {
                return;
            }
        }
        last_sent = Some(Instant::now());
    }
}

/// One batch of events: stats (or stats_error), throughput, workers.
async fn update(state: &AppState) -> Vec<Event> {
    ::metrics::counter!(DASHBOARD_UPDATES).increment(1);
    let mut events = Vec::with_capacity(3);
    match current_stats(state).await {
        Ok(stats) => events.push(json_event("stats", &stats)),
        Err(error) => events.push(json_event("stats_error", &error.body())),
    }
    events.push(json_event(
        "throughput",
        &ThroughputRing::global().throughput(now_millis()),
    ));
    if let Ok(workers) = worker_list(state).await {
        events.push(json_event("workers", &workers));
    }
    events
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Event::default().event(name).data(data)
}
