//! Changes made in other processes, by pub/sub: one subscription per process
//! to the `changes` and `work` channels, fanned out in memory through the
//! [`EventBus`]. A change message carries only a job id; the job is read
//! only if somebody here watches it. After a reconnect every watched job is
//! re-read, since messages published meanwhile were lost.

use std::sync::Weak;
use std::time::Duration;

use futures::StreamExt;

use super::RedisStore;
use super::keys::Keys;
use crate::backoff::retry_delays;
use crate::events::EventBus;
use crate::model::JobId;
use crate::store::Store;

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the subscriber; it stops when the store is dropped.
pub(super) fn spawn(client: redis::Client, keys: Keys, bus: EventBus, store: Weak<RedisStore>) {
    tokio::spawn(async move {
        let changes = keys.named("changes");
        let work = keys.named("work");
        let first = Duration::from_millis(100);
        let mut backoffs = retry_delays(first, MAX_BACKOFF);
        while store.strong_count() > 0 {
            let mut backoff = backoffs.next().unwrap_or(MAX_BACKOFF);
            match subscribe(&client, &changes, &work).await {
                Ok(mut pubsub) => {
                    backoffs = retry_delays(first, MAX_BACKOFF);
                    backoff = first;
                    resync(&store, &bus).await;
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        if message.get_channel_name() == work {
                            bus.notify_work();
                            continue;
                        }
                        let Ok(id) = message.get_payload::<String>() else {
                            continue;
                        };
                        let Ok(id) = id.parse::<JobId>() else {
                            continue;
                        };
                        if bus.is_watched(id) {
                            refresh(&store, &bus, id).await;
                        }
                    }
                    tracing::warn!("redis subscription lost; reconnecting");
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot subscribe to redis")
                }
            }
            tokio::time::sleep(backoff).await;
        }
    });
}

async fn subscribe(
    client: &redis::Client,
    changes: &str,
    work: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(changes).await?;
    pubsub.subscribe(work).await?;
    Ok(pubsub)
}

async fn refresh(store: &Weak<RedisStore>, bus: &EventBus, id: JobId) {
    let Some(store) = store.upgrade() else { return };
    if let Ok(job) = store.get(id).await {
        bus.deliver(&job);
    }
}

/// Catches up after (re)subscribing: re-reads watched jobs, wakes workers.
async fn resync(store: &Weak<RedisStore>, bus: &EventBus) {
    for id in bus.watched_ids() {
        refresh(store, bus, id).await;
    }
    bus.notify_work();
}
