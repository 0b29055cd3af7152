//! The process's change feed. Stores publish every job they change here;
//! long-polls, SSE streams and running executors watch single jobs, and the
//! claimer waits for "work available". Nothing here polls the store: a
//! waiter costs one watch channel, shared by every waiter of the same job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::model::{Job, JobId};

/// The latest snapshot of a watched job, `None` until the first change.
pub type Snapshot = Option<Arc<Job>>;

/// Changes the all-jobs feed buffers per subscriber before a slow one lags.
const FEED_CAPACITY: usize = 4096;

/// Log appends the log feed buffers per subscriber before a slow one lags
/// (a follower that lags re-reads the store, so nothing is lost).
const LOG_FEED_CAPACITY: usize = 1024;

/// Per-process fan-out of job changes. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    watched: Mutex<HashMap<JobId, Watched>>,
    work: Notify,
    /// Counts work signals, for waiters that must all wake (remote
    /// workers' long-polls), where [`Inner::work`] wakes one claimer.
    work_seen: watch::Sender<u64>,
    all: broadcast::Sender<Arc<Job>>,
    logs: broadcast::Sender<JobId>,
}

/// One watched job: its channel, and whether any watcher wants changes
/// made by other processes announced to this one (see
/// [`EventBus::announced_ids`]).
struct Watched {
    sender: watch::Sender<Snapshot>,
    announced: bool,
    /// Fired when the store no longer has the job ([`EventBus::vanish`]).
    gone: CancellationToken,
}

impl Default for EventBus {
    fn default() -> EventBus {
        EventBus {
            inner: Arc::new(Inner {
                watched: Mutex::new(HashMap::new()),
                work: Notify::new(),
                work_seen: watch::channel(0).0,
                all: broadcast::channel(FEED_CAPACITY).0,
                logs: broadcast::channel(LOG_FEED_CAPACITY).0,
            }),
        }
    }
}

impl EventBus {
    /// A new, empty bus.
    pub fn new() -> EventBus {
        EventBus::default()
    }

    /// Every job change this process makes, for metrics and dashboards.
    /// A subscriber that falls behind by more than a few thousand changes
    /// skips ahead (`RecvError::Lagged`).
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<Job>> {
        self.inner.all.subscribe()
    }

    fn watched(&self) -> MutexGuard<'_, HashMap<JobId, Watched>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation on it is a single insert, get or remove).
        self.inner
            .watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes a change this process made: to the all-jobs feed and to
    /// the job's watchers.
    pub fn publish(&self, job: &Job) {
        if self.inner.all.receiver_count() > 0 {
            let _ = self.inner.all.send(Arc::new(job.clone()));
        }
        self.deliver(job);
    }

    /// Delivers a job to its watchers, if it has any (a change another
    /// process made, or a re-read). A snapshot older than the one they
    /// already have is ignored, so deliveries from several sources cannot go
    /// backwards.
    pub fn deliver(&self, job: &Job) {
        self.deliver_with(job.id, job.revision, || Arc::new(job.clone()));
    }

    /// Like [`EventBus::deliver`], for a snapshot already shared.
    pub fn deliver_shared(&self, job: &Arc<Job>) {
        self.deliver_with(job.id, job.revision, || job.clone());
    }

    fn deliver_with(&self, id: JobId, revision: i64, snapshot: impl FnOnce() -> Arc<Job>) {
        let watched = self.watched();
        if let Some(Watched { sender, .. }) = watched.get(&id) {
            sender.send_if_modified(|current| {
                let newer = current.as_ref().is_none_or(|seen| seen.revision < revision);
                if newer {
                    *current = Some(snapshot());
                }
                newer
            });
        }
    }

    /// Starts watching one job. Take the watch *before* reading the job from
    /// the store, so no change between the read and the wait is missed.
    /// The job is among [`EventBus::announced_ids`].
    pub fn watch(&self, id: JobId) -> JobWatch {
        self.subscribe(id, true)
    }

    /// Like [`EventBus::watch`], for the worker running the job: the
    /// changes it must hear of from other processes (a cancel, a recovery)
    /// are always announced, so this watch asks for nothing more.
    pub fn watch_running(&self, id: JobId) -> JobWatch {
        self.subscribe(id, false)
    }

    fn subscribe(&self, id: JobId, announced: bool) -> JobWatch {
        let mut watched = self.watched();
        let entry = watched.entry(id).or_insert_with(|| Watched {
            sender: watch::channel(None).0,
            announced,
            gone: CancellationToken::new(),
        });
        entry.announced |= announced;
        // A new watcher has just read the job from the store: whatever
        // vanished before is back (a restored Redis), so it starts afresh.
        if entry.gone.is_cancelled() {
            entry.gone = CancellationToken::new();
        }
        JobWatch {
            bus: self.clone(),
            id,
            receiver: entry.sender.subscribe(),
            gone: entry.gone.clone(),
        }
    }

    /// Tells the job's watchers that the store no longer has it (deleted by
    /// retention cleanup, a Redis that lost its data): their
    /// [`JobWatch::gone`] fires.
    pub fn vanish(&self, id: JobId) {
        if let Some(watched) = self.watched().get(&id) {
            watched.gone.cancel();
        }
    }

    /// The revision of the latest snapshot this process's watchers of the
    /// job have, if any.
    pub fn revision_of(&self, id: JobId) -> Option<i64> {
        self.watched()
            .get(&id)
            .and_then(|w| w.sender.borrow().as_ref().map(|job| job.revision))
    }

    /// True when somebody in this process watches the job.
    pub fn is_watched(&self, id: JobId) -> bool {
        self.watched().contains_key(&id)
    }

    /// The jobs somebody in this process watches.
    pub fn watched_ids(&self) -> Vec<JobId> {
        self.watched().keys().copied().collect()
    }

    /// The watched jobs whose changes by other processes must be announced
    /// to this one (see [`crate::store::Store::watch`]).
    pub fn announced_ids(&self) -> Vec<JobId> {
        self.watched()
            .iter()
            .filter(|(_, w)| w.announced)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many job snapshots this process holds for watchers (the
    /// `cache_size` of `/queue/stats`).
    pub fn cache_size(&self) -> usize {
        self.watched().len()
    }

    /// Tells this process's log followers that lines were appended to a
    /// job's log (a log append changes no job, so watchers do not hear of
    /// it). Appends by other processes are not announced: followers
    /// re-read the store now and then.
    pub fn log_appended(&self, id: JobId) {
        if self.inner.logs.receiver_count() > 0 {
            let _ = self.inner.logs.send(id);
        }
    }

    /// The ids of jobs whose logs this process appended to, as it does.
    pub fn subscribe_logs(&self) -> broadcast::Receiver<JobId> {
        self.inner.logs.subscribe()
    }

    /// Signals that a job may have become claimable.
    pub fn notify_work(&self) {
        self.inner.work.notify_one();
        self.inner
            .work_seen
            .send_modify(|seen| *seen = seen.wrapping_add(1));
    }

    /// Work signals for every waiter: each receiver sees each signal sent
    /// after it was taken (several at once may arrive as one). Take it
    /// before trying a claim, so a signal during the claim is not missed.
    pub fn work_signal(&self) -> watch::Receiver<u64> {
        self.inner.work_seen.subscribe()
    }

    /// Waits for [`EventBus::notify_work`]. A signal sent while nobody
    /// waited is kept for the next waiter.
    pub async fn work_available(&self) {
        self.inner.work.notified().await;
    }
}

/// A subscription to one job's changes; unsubscribes on drop.
pub struct JobWatch {
    bus: EventBus,
    id: JobId,
    receiver: watch::Receiver<Snapshot>,
    gone: CancellationToken,
}

impl JobWatch {
    /// Fired once the store no longer has the job ([`EventBus::vanish`]);
    /// no change will follow.
    pub fn gone(&self) -> CancellationToken {
        self.gone.clone()
    }

    /// The watched job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Waits for the next change and returns the job as it is then. Returns
    /// `None` only if the bus is gone.
    pub async fn changed(&mut self) -> Option<Arc<Job>> {
        loop {
            self.receiver.changed().await.ok()?;
            if let Some(job) = self.receiver.borrow_and_update().clone() {
                return Some(job);
            }
        }
    }

    /// The latest snapshot published since the watch began, if any.
    pub fn latest(&self) -> Snapshot {
        self.receiver.borrow().clone()
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        let mut watched = self.bus.watched();
        // Our own receiver still counts here: 1 means we were the last.
        if watched
            .get(&self.id)
            .is_some_and(|w| w.sender.receiver_count() <= 1)
        {
            watched.remove(&self.id);
        }
    }
}
