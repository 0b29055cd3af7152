//! Idempotent submission: a key the client picks so that a retried
//! submission returns the job the first one stored instead of storing
//! another.

use super::{Job, Millis};

/// A submission's idempotency key, scoped to the submitting user, with
/// what identifies the request it first came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The client's key (1 to 255 visible ASCII characters).
    pub key: String,
    /// A digest of the submission's body: a repeat with another body is
    /// refused rather than answered with the first one's job.
    pub fingerprint: String,
    /// How long the key holds its job, in milliseconds from the submission.
    pub ttl_millis: Millis,
}

/// What an idempotent submission did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// No job held the key: this one was stored.
    Created(Job),
    /// A job of the same user held the key, for the same body: that job,
    /// whatever its status now.
    Existing(Job),
}

impl Submitted {
    /// The job stored or found.
    pub fn job(&self) -> &Job {
        match self {
            Submitted::Created(job) | Submitted::Existing(job) => job,
        }
    }
}
