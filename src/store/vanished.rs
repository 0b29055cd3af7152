//! Learning that a watched job is gone. A job can leave the store without
//! a change anybody announces: retention cleanup deletes it (in any process
//! sharing the store), a Redis loses its data (`FLUSHALL`, a restart without
//! persistence) or its key is deleted by hand. Once every
//! [`CHECK_INTERVAL`], one task per process asks the store, in one round
//! trip, which of the jobs somebody here watches (long-polls and SSE
//! streams, not the workers' own jobs) it no longer has, and tells their
//! watchers ([`EventBus::vanish`]), so their poll answers 404 and their
//! stream ends. Waiters themselves
//! never touch the store.

use std::sync::Weak;
use std::time::Duration;

use super::Store;
use crate::events::EventBus;

/// How often the watched jobs are looked for in the store.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Starts the check; it stops when the store is dropped.
pub(crate) fn spawn(store: Weak<dyn Store>, bus: EventBus) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let ids = bus.announced_ids();
            if ids.is_empty() {
                if store.strong_count() == 0 {
                    return;
                }
                continue;
            }
            let Some(store) = store.upgrade() else { return };
            // Only a definite "no such job" counts: a store that does not
            // answer says nothing about the jobs.
            if let Ok(missing) = store.missing(&ids).await {
                for id in missing {
                    bus.vanish(id);
                }
            }
        }
    });
}
