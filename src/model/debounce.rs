//! Debounced submission: submissions with one key, while the job the
//! first of them stored still waits, collapse into that job.

use super::Millis;

/// A submission's debounce key, scoped to the submitting user and the job
/// type, with its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debounce {
    /// The client's key (1 to 255 visible ASCII characters).
    pub key: String,
    /// The job starts this long after the last submission (ms, above 0).
    pub period_millis: Millis,
    /// ... but never later than this long after the first (ms, above 0).
    pub max_wait_millis: Millis,
}

impl Debounce {
    /// When a job first stored under the key at `now` is due.
    pub fn first_due(&self, now: Millis) -> Millis {
        now.saturating_add(self.period_millis.min(self.max_wait_millis).max(1))
    }

    /// When the key's job, first stored at `first_at`, is due after a
    /// submission at `now`: a period after it, capped by the maximum wait.
    pub fn due(&self, first_at: Millis, now: Millis) -> Millis {
        now.saturating_add(self.period_millis)
            .min(first_at.saturating_add(self.max_wait_millis))
    }
}
