//! What one API node limits besides the store's quota of queued jobs: the
//! per-user submission rate ([`submit_rate`]) and the SSE streams and
//! long-polls open at once ([`stream_slots`]). Both are this process's
//! memory, so both hold per node.

pub(crate) mod stream_slots;
pub(crate) mod submit_rate;

use std::sync::Arc;

use self::stream_slots::StreamSlots;
use self::submit_rate::SubmitRateLimiter;
use crate::config::Settings;

/// This node's limiters, built once from the settings and shared by every
/// handler.
#[derive(Debug)]
pub struct Backpressure {
    pub(crate) submit_rate: SubmitRateLimiter,
    pub(crate) stream_slots: Arc<StreamSlots>,
}

impl Backpressure {
    /// The limiters `settings` ask for: `submit_rate_per_user` and
    /// `submit_burst_per_user`, `max_open_streams` and
    /// `max_open_streams_per_caller`.
    pub fn new(settings: &Settings) -> Backpressure {
        Backpressure {
            submit_rate: SubmitRateLimiter::new(settings.submit_rate),
            stream_slots: Arc::new(StreamSlots::new(
                settings.max_open_streams,
                settings.max_open_streams_per_caller,
            )),
        }
    }
}
