//! The pool of read connections: bounded, fair, and shrinking after a
//! burst. WAL readers never block the writer nor each other, but each
//! connection holds its own page cache, parsed schema and cached
//! statements (hundreds of KiB once used), so the pool opens at most
//! [`max_readers`] and closes those beyond [`FLOOR`] that stayed unused for
//! [`IDLE_TIMEOUT`]. A read waits for a connection on the async runtime, in
//! arrival order (a semaphore's queue), never on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection::{open_connection, wait_for_lock};
use super::rows::db_err;
use crate::config::Synchronous;
use crate::store::{StoreError, StoreResult};

/// Idle connections kept however long they stay unused.
pub(super) const FLOOR: usize = 2;

/// How long a connection beyond the floor may stay unused before it closes.
/// Reopening one costs about a millisecond, so a pool sized for the last
/// burst is not worth keeping for long.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often idle connections are looked at.
const SHRINK_INTERVAL: Duration = Duration::from_secs(2);

/// Read connections opened with the store, for the first requests of a busy
/// start (opening one costs about a millisecond); beyond the floor they
/// close like any other once unused.
pub(super) const WARM: usize = 8;

/// The most read connections open at once: two per core, between 8 and 32.
/// Reads are short and mostly CPU (WAL pages come from the OS cache), so
/// more connections than that only add memory and contention; a read beyond
/// them waits for one to come free.
pub(super) fn max_readers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * cores).clamp(8, 32)
}

/// A connection of the pool; counted in [`ReaderPool::size`] while it exists.
struct Reader {
    conn: Connection,
    /// When it was last handed back.
    idle_since: Instant,
    open: Arc<AtomicUsize>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The right to hold one of the pool's connections ([`ReaderPool::permit`]),
/// given back on drop.
pub(super) struct Permit {
    _held: OwnedSemaphorePermit,
}

/// Read connections, opened on demand up to a bound and reused.
pub(super) struct ReaderPool {
    path: PathBuf,
    /// Idle connections, the most recently used last: reads take from the
    /// end, so the ones at the front are those a burst needed and the
    /// steady load does not.
    idle: Mutex<Vec<Reader>>,
    /// One permit per connection that may exist.
    permits: Arc<Semaphore>,
    /// Connections open now, idle or in use.
    open: Arc<AtomicUsize>,
}

impl ReaderPool {
    /// A pool of at most `max` connections to `path`, `warm` of them opened
    /// now.
    pub(super) fn open(path: &Path, max: usize, warm: usize) -> rusqlite::Result<ReaderPool> {
        let pool = ReaderPool {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max)),
            open: Arc::new(AtomicUsize::new(0)),
        };
        for _ in 0..warm.min(max) {
            let reader = pool.connect()?;
            pool.idle().push(reader);
        }
        Ok(pool)
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Reader>> {
        // Every use is a single push, pop or drain: a panic cannot leave
        // the list half changed.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn connect(&self) -> rusqlite::Result<Reader> {
        let conn = open_connection(&self.path, Synchronous::Normal)?;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Reader {
            conn,
            idle_since: Instant::now(),
            open: self.open.clone(),
        })
    }

    /// Connections open now, idle or in use.
    #[cfg(test)]
    fn size(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Waits, in arrival order, until a connection may be used; the wait
    /// is on the async runtime, so no thread is held meanwhile.
    pub(super) async fn permit(&self) -> StoreResult<Permit> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map(|held| Permit { _held: held })
            .map_err(|e| StoreError::backend_unavailable("sqlite", e))
    }

    /// Runs `work` on an idle connection, opening one if none is; it may
    /// wait for a lock, so call it on a blocking thread.
    pub(super) fn with<T>(
        &self,
        permit: Permit,
        work: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let pooled = self.idle().pop();
        let reader = match pooled {
            Some(reader) => reader,
            None => self.connect().map_err(db_err)?,
        };
        let result = work(&reader.conn);
        self.put_back(reader);
        // Only now: a read let in earlier would open a connection of its own.
        drop(permit);
        result
    }

    /// Runs `work` at once on an idle connection that does not wait for
    /// locks: for a short read on an async thread. `None` when no
    /// connection is idle, reads are queued for one, or the file is
    /// locked; then read on a blocking thread instead.
    pub(super) fn try_now<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<StoreResult<T>> {
        let permit = self.permits.try_acquire().ok()?;
        let mut reader = self.idle().pop()?;
        let result = match reader.conn.busy_handler(None::<fn(i32) -> bool>) {
            Ok(()) => work(&reader.conn),
            Err(e) => Err(e),
        };
        // Give the connection its waiting back for blocking reads.
        let restored = reader.conn.busy_handler(Some(wait_for_lock));
        let result = match (result, restored) {
            (Err(rusqlite::Error::SqliteFailure(e, _)), _)
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                None
            }
            (result, Ok(())) => Some(result.map_err(db_err)),
            // A connection that cannot wait is not put back.
            (_, Err(_)) => return None,
        };
        self.put_back(reader);
        drop(permit);
        result
    }

    fn put_back(&self, mut reader: Reader) {
        reader.idle_since = Instant::now();
        self.idle().push(reader);
    }

    /// Closes the idle connections beyond [`FLOOR`] unused since before
    /// `unused_since`; returns how many.
    pub(super) fn shrink(&self, unused_since: Instant) -> usize {
        let closing: Vec<Reader> = {
            let mut idle = self.idle();
            let surplus = idle.len().saturating_sub(FLOOR);
            let stale = idle
                .iter()
                .take(surplus)
                .take_while(|reader| reader.idle_since < unused_since)
                .count();
            idle.drain(..stale).collect()
        };
        // Closed outside the lock.
        closing.len()
    }
}

/// Closes unused connections every [`SHRINK_INTERVAL`] (on a blocking
/// thread: closing one touches files); stops when the pool is dropped.
pub(super) fn spawn_shrinker(pool: Weak<ReaderPool>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(SHRINK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(pool) = pool.upgrade() else { return };
            let Some(unused_since) = Instant::now().checked_sub(IDLE_TIMEOUT) else {
                continue;
            };
            let closed = tokio::task::spawn_blocking(move || pool.shrink(unused_since)).await;
            if let Ok(n @ 1..) = closed {
                tracing::debug!(closed = n, "closed unused read connections");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max: usize, warm: usize) -> (tempfile::TempDir, Arc<ReaderPool>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.sqlite3");
        let pool = ReaderPool::open(&path, max, warm).unwrap();
        (dir, Arc::new(pool))
    }

    fn select_one(conn: &Connection) -> StoreResult<i64> {
        conn.query_row("SELECT 1", [], |row| row.get(0))
            .map_err(db_err)
    }

    /// A read on an async thread never opens a connection there nor waits
    /// for a lock: with no idle connection it declines (and the store reads
    /// on a blocking thread, which opens one and keeps it).
    #[tokio::test(flavor = "current_thread")]
    async fn a_read_at_once_needs_an_idle_connection() {
        let (_dir, pool) = pool(4, 0);
        let select = |conn: &Connection| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0));
        assert!(pool.try_now(select).is_none(), "no idle connection");
        assert_eq!(pool.size(), 0, "none opened on this thread");
        let permit = pool.permit().await.unwrap();
        let reader = pool.clone();
        let read = tokio::task::spawn_blocking(move || reader.with(permit, select_one));
        assert_eq!(read.await.unwrap().unwrap(), 1);
        assert_eq!(pool.size(), 1, "the blocking read's connection is kept");
        assert!(
            matches!(pool.try_now(select), Some(Ok(1))),
            "an idle connection reads at once"
        );
    }

    /// A burst of reads, each holding its connection until all have
    /// started or the bound is reached, opens no more than the bound; the
    /// rest wait their turn and all complete.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_opens_at_most_the_bound_and_every_read_completes() {
        let (_dir, pool) = pool(4, 0);
        let busy = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let reads = (0..40).map(|_| {
            let (pool, busy, most) = (pool.clone(), busy.clone(), most.clone());
            async move {
                let permit = pool.permit().await?;
                let reader = pool.clone();
                tokio::task::spawn_blocking(move || {
                    reader.with(permit, |conn| {
                        let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        busy.fetch_sub(1, Ordering::SeqCst);
                        select_one(conn)
                    })
                })
                .await
                .unwrap()
            }
        });
        let results = futures::future::join_all(reads).await;
        assert!(results.iter().all(|r| matches!(r, Ok(1))));
        assert!(most.load(Ordering::SeqCst) <= 4, "{most:?}");
        assert!(pool.size() <= 4, "{} connections", pool.size());
    }

    /// Waiting reads are let in in arrival order.
    #[tokio::test(flavor = "current_thread")]
    async fn waiting_reads_get_their_connection_in_arrival_order() {
        let (_dir, pool) = pool(1, 1);
        let held = pool.permit().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiters: Vec<_> = (0..5)
            .map(|i| {
                let (pool, order) = (pool.clone(), order.clone());
                tokio::spawn(async move {
                    let permit = pool.permit().await.unwrap();
                    order.lock().unwrap().push(i);
                    pool.with(permit, select_one).unwrap();
                })
            })
            .collect();
        // Let each waiter queue, in spawn order, before the first is let in.
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(
            pool.try_now(|conn| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
                .is_none(),
            "a read at once does not pass the queue"
        );
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    /// After a burst, connections beyond the floor that stay unused close;
    /// the floor stays.
    #[tokio::test(flavor = "current_thread")]
    async fn unused_connections_beyond_the_floor_close() {
        let (_dir, pool) = pool(8, 8);
        assert_eq!(pool.size(), 8);
        let before = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(pool.shrink(before), 0, "all fresh");
        // One read after the burst: its connection is the most recent.
        let permit = pool.permit().await.unwrap();
        pool.with(permit, select_one).unwrap();
        assert_eq!(pool.shrink(Instant::now()), 8 - FLOOR);
        assert_eq!(pool.size(), FLOOR);
        assert_eq!(pool.shrink(Instant::now()), 0, "the floor stays");
        let permit = pool.permit().await.unwrap();
        assert_eq!(pool.with(permit, select_one).unwrap(), 1);
        assert_eq!(pool.size(), FLOOR, "an idle connection was reused");
    }
}
