//! What one API node keeps for the remote workers that call it, none of it
//! needed for correctness (a restarted node, or another node, answers the
//! same calls): the long-polls waiting here, so that a worker's other call
//! can tell its long-poll which jobs it now holds (to hear of their
//! cancels at once), and when each worker's registration was last renewed
//! here (so calls that do not wait need not renew it every time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::model::JobId;

/// How long a worker unheard of is remembered.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// A change in what a worker holds, for its waiting long-poll.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeldChange {
    /// Jobs it claimed.
    pub added: Vec<JobId>,
    /// Jobs it finished.
    pub removed: Vec<JobId>,
}

/// The node's remote-worker bookkeeping. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Node {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    workers: HashMap<String, Seen>,
    next_listener: u64,
    last_sweep: Option<Instant>,
}

struct Seen {
    last_call: Instant,
    last_beat: Option<Instant>,
    listeners: Vec<(u64, mpsc::UnboundedSender<HeldChange>)>,
}

impl Node {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call of `worker_id` should renew its registration: a
    /// waiting call always does (`waits`), another only when none did here
    /// for half the heartbeat interval. Counts as renewed from now if so.
    pub(crate) fn renewal_due(&self, worker_id: &str, waits: bool, interval: Duration) -> bool {
        let now = Instant::now();
        let mut state = self.state();
        state.sweep(now);
        let seen = state.seen(worker_id, now);
        let due = waits
            || seen
                .last_beat
                .is_none_or(|at| now.duration_since(at) >= interval / 2);
        if due {
            seen.last_beat = Some(now);
        }
        due
    }

    /// Starts hearing of `worker_id`'s held-job changes made by its other
    /// calls on this node, until the listener is dropped.
    pub(crate) fn listen(&self, worker_id: &str) -> Listener {
        let (sender, changes) = mpsc::unbounded_channel();
        let mut state = self.state();
        state.next_listener += 1;
        let key = state.next_listener;
        state
            .seen(worker_id, Instant::now())
            .listeners
            .push((key, sender));
        Listener {
            node: self.clone(),
            worker_id: worker_id.to_owned(),
            key,
            changes,
        }
    }

    /// Tells `worker_id`'s waiting long-polls here what it now holds.
    pub(crate) fn tell(&self, worker_id: &str, change: HeldChange) {
        if change.added.is_empty() && change.removed.is_empty() {
            return;
        }
        if let Some(seen) = self.state().workers.get(worker_id) {
            for (_, listener) in &seen.listeners {
                let _ = listener.send(change.clone());
            }
        }
    }
}

impl State {
    fn seen(&mut self, worker_id: &str, now: Instant) -> &mut Seen {
        let seen = self
            .workers
            .entry(worker_id.to_owned())
            .or_insert_with(|| Seen {
                last_call: now,
                last_beat: None,
                listeners: Vec::new(),
            });
        seen.last_call = now;
        seen
    }

    /// Forgets workers unheard of for a while (at most once a minute).
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(60))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.workers.retain(|_, seen| {
            !seen.listeners.is_empty() || now.duration_since(seen.last_call) < FORGET_AFTER
        });
    }
}

/// A waiting long-poll's ear for its worker's other calls; stops listening
/// when dropped.
pub(crate) struct Listener {
    node: Node,
    worker_id: String,
    key: u64,
    changes: mpsc::UnboundedReceiver<HeldChange>,
}

impl Listener {
    /// The next change in what the worker holds.
    pub(crate) async fn next(&mut self) -> Option<HeldChange> {
        self.changes.recv().await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(seen) = self.node.state().workers.get_mut(&self.worker_id) {
            seen.listeners.retain(|(key, _)| *key != self.key);
        }
    }
}
