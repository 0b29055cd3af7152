//! Runs a handler's CPU- and file-bound work on a blocking thread, so the
//! async runtime stays responsive, while cancellation and progress still flow
//! between that thread and the job's [`JobContext`].

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::Progress;
use crate::runtime::JobContext;

/// What blocking pipeline code sees of its job: a stop signal to check
/// between items and a progress channel.
pub struct Task {
    cancel: CancellationToken,
    progress: watch::Sender<Option<Progress>>,
}

impl Task {
    /// Fails with "cancelled" once the job should stop; call it between
    /// items so a cancel is honoured within one item's work.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.cancel.is_cancelled() {
            anyhow::bail!("cancelled");
        }
        Ok(())
    }

    /// Resolves once the job should stop, for async work the step awaits
    /// (an artifact's download).
    pub(crate) async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Reports `done` of `total` items (documents, chunks or records).
    pub fn progress(&self, done: u64, total: u64) {
        let fraction = if total == 0 {
            0.0
        } else {
            done as f64 / total as f64
        };
        self.report(Progress {
            fraction,
            items_processed: Some(done),
            total_items: Some(total),
        });
    }

    /// Reports progress as given, for steps whose fraction is not simply
    /// items done over items in all.
    pub fn report(&self, progress: Progress) {
        self.progress.send_replace(Some(progress));
    }
}

/// Runs `work` on a blocking thread and returns its result. A cancel of the
/// job (or this future being dropped) signals the thread through
/// [`Task::check`]; the future still waits for the thread to return, so the
/// work's own clean-up (such as removing a temporary artifact directory) has
/// happened when it resolves. Progress the work reports is forwarded to `ctx`.
pub(crate) async fn run_blocking<T, F>(ctx: &JobContext, work: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Task) -> anyhow::Result<T> + Send + 'static,
{
    let cancel = CancellationToken::new();
    // A job stopped before its step began does no work: without this, the
    // thread could run ahead of the first look at `ctx` below.
    if ctx.is_cancelled() {
        cancel.cancel();
    }
    // If the executor drops this future after the grace period, the thread
    // still learns that it must stop.
    let _stop_on_drop = cancel.clone().drop_guard();
    let (tx, mut rx) = watch::channel(None);
    let task = Task {
        cancel: cancel.clone(),
        progress: tx,
    };
    let mut handle = tokio::task::spawn_blocking(move || work(&task));
    let mut progress_open = true;
    let joined = loop {
        tokio::select! {
            joined = &mut handle => break joined,
            _ = ctx.cancelled(), if !cancel.is_cancelled() => cancel.cancel(),
            changed = rx.changed(), if progress_open => match changed {
                Ok(()) => {
                    if let Some(progress) = *rx.borrow_and_update() {
                        ctx.report(progress);
                    }
                }
                Err(_) => progress_open = false,
            },
        }
    };
    if let Some(progress) = *rx.borrow_and_update() {
        ctx.report(progress);
    }
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => anyhow::bail!("the pipeline step panicked"),
        Err(e) => anyhow::bail!("the pipeline step did not finish: {e}"),
    }
}
