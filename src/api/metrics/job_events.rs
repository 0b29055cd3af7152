//! Job counters and histograms of the attempts this process sees, from
//! its job events: one task reads the event bus's all-jobs feed and a
//! [`Tracker`] turns each snapshot into counter increments and histogram
//! samples. Not HTTP code: it runs wherever jobs change, in `jobd serve`
//! and in a `jobd worker` with `--metrics-bind`. The totals of finished
//! jobs come from the store instead (see [`super::store_gauges`]): another
//! process's jobs reach this bus only when watched here.

use std::collections::HashMap;
use std::time::Duration;

use metrics::{counter, histogram};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::recorder::{DURATION, LAGGED, QUEUE_WAIT, RETRIED, STARTED, SUBMITTED, prometheus};
use crate::events::EventBus;
use crate::model::{Job, JobId, JobStatus, Millis};

/// Most jobs the feed task remembers state for (pending-since times and
/// attempt starts). Entries go when a job leaves the state; a job changed
/// by another process may never report back, so the maps are cleared
/// whole when they reach this size rather than grow.
const TRACKED_JOBS: usize = 100_000;

/// Starts the task that turns this process's job changes into metrics; it
/// ends when `shutdown` fires. Counters of every configured job type
/// (`job_types`) start at zero, so rates exist before the first job.
pub(crate) fn spawn_feed<'a>(
    bus: &EventBus,
    job_types: impl IntoIterator<Item = &'a str>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let handle = prometheus();
    for job_type in job_types {
        for name in [SUBMITTED, STARTED, RETRIED] {
            counter!(name, "job_type" => job_type.to_string()).increment(0);
        }
    }
    counter!(LAGGED).increment(0);
    let mut feed = bus.subscribe_all();
    tokio::spawn(async move {
        let mut tracker = Tracker::default();
        let mut upkeep = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                change = feed.recv() => match change {
                    Ok(job) => tracker.observe(&job),
                    Err(RecvError::Lagged(missed)) => counter!(LAGGED).increment(missed),
                    Err(RecvError::Closed) => return,
                },
                _ = upkeep.tick() => handle.run_upkeep(),
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// What the feed task remembers between snapshots of a job, to tell a
/// claim from a progress report, to time the queue wait, and to drop
/// snapshots that arrive after a newer one (tasks publish concurrently, so
/// a progress report may reach the feed after the cancel that ended it).
#[derive(Default)]
struct Tracker {
    /// When each job last became pending, as seen in this process.
    pending_since: HashMap<JobId, Millis>,
    /// The `started_at` of each running job's attempt already counted.
    started: HashMap<JobId, Millis>,
    /// The newest revision seen of recently changed jobs, in two
    /// generations: when the young one fills up it becomes the old one.
    revisions: HashMap<JobId, i64>,
    /// The previous generation of `revisions`.
    old_revisions: HashMap<JobId, i64>,
}

impl Tracker {
    /// True when a newer snapshot of the job was already observed;
    /// otherwise records this one as the newest.
    fn is_stale(&mut self, job: &Job) -> bool {
        let seen = self
            .revisions
            .get(&job.id)
            .or_else(|| self.old_revisions.get(&job.id));
        if seen.is_some_and(|&revision| revision >= job.revision) {
            return true;
        }
        if self.revisions.len() >= TRACKED_JOBS {
            self.old_revisions = std::mem::take(&mut self.revisions);
        }
        self.revisions.insert(job.id, job.revision);
        false
    }

    fn observe(&mut self, job: &Job) {
        let job_type = job.job_type.clone();
        // Exactly one snapshot of a job has revision 1, its submission;
        // counted even when it arrives late (the claim may be published
        // by the worker before the submit handler publishes).
        if job.revision == 1 {
            counter!(SUBMITTED, "job_type" => job_type.clone()).increment(1);
        }
        if self.is_stale(job) {
            return;
        }
        if self.pending_since.len() >= TRACKED_JOBS {
            self.pending_since.clear();
        }
        if self.started.len() >= TRACKED_JOBS {
            self.started.clear();
        }
        match job.status {
            JobStatus::Pending => {
                self.started.remove(&job.id);
                self.pending_since.insert(job.id, job.updated_at);
            }
            JobStatus::Running => {
                let Some(started_at) = job.started_at else {
                    return;
                };
                if self.started.insert(job.id, started_at) == Some(started_at) {
                    return; // a progress report of an attempt already counted
                }
                counter!(STARTED, "job_type" => job_type.clone()).increment(1);
                let claimable = self.pending_since.remove(&job.id).unwrap_or_else(|| {
                    job.created_at
                        .max(job.scheduled_for.unwrap_or(job.created_at))
                });
                histogram!(QUEUE_WAIT, "job_type" => job_type)
                    .record(seconds_between(claimable, started_at));
            }
            JobStatus::Scheduled => {
                self.started.remove(&job.id);
                self.pending_since.remove(&job.id);
                if job.revision > 1 && job.attempts > 0 {
                    counter!(RETRIED, "job_type" => job_type.clone()).increment(1);
                    if let Some(run) = attempt_seconds(job) {
                        histogram!(DURATION, "job_type" => job_type, "status" => "retried")
                            .record(run);
                    }
                }
            }
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled => {
                self.started.remove(&job.id);
                self.pending_since.remove(&job.id);
                let label = job.status.as_str();
                if let Some(run) = attempt_seconds(job) {
                    histogram!(DURATION, "job_type" => job_type, "status" => label).record(run);
                }
            }
        }
    }
}

fn seconds_between(from: Millis, to: Millis) -> f64 {
    (to - from).max(0) as f64 / 1000.0
}

/// The run time of the attempt that just ended, when it ran at all.
fn attempt_seconds(job: &Job) -> Option<f64> {
    let started = job.started_at?;
    Some(seconds_between(
        started,
        job.completed_at.unwrap_or(job.updated_at),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_snapshots_do_not_count_again() {
        let mut tracker = Tracker::default();
        let mut job = crate::model::Job {
            id: uuid::Uuid::now_v7(),
            job_type: "t".into(),
            remote: false,
            user_id: "u".into(),
            concurrency_key: None,
            status: JobStatus::Running,
            priority: 0,
            parameters: serde_json::json!({}),
            result: None,
            error: None,
            progress: Default::default(),
            attempts: 1,
            max_attempts: 1,
            interruptions: 0,
            timeout_seconds: None,
            created_at: 0,
            scheduled_for: None,
            started_at: Some(10),
            completed_at: None,
            updated_at: 10,
            worker_id: None,
            revision: 3,
            depends_on: Vec::new(),
            waiting_dependencies: 0,
            cancelled_by: None,
            expires_at: None,
            schedule: None,
        };
        let progress = job.clone();
        job.status = JobStatus::Cancelled;
        job.revision = 4;
        tracker.observe(&job);
        assert!(tracker.is_stale(&progress), "an older snapshot is stale");
        assert!(!tracker.started.contains_key(&job.id));
        job.revision = 5;
        assert!(!tracker.is_stale(&job));
    }
}
