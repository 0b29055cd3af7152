//! One retry schedule for every loop that waits out a failure (a claim, an
//! outcome, the Redis subscription): exponential, capped, with jitter, so
//! processes that failed together (a store outage) do not retry in lockstep.

use std::time::Duration;

use backon::BackoffBuilder;

/// Pauses between retries: from about `first`, doubling, at most `max`,
/// each with random jitter; never ending.
pub(crate) fn retry_delays(first: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::new()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
        .map(move |delay| delay.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_never_end() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let delays: Vec<Duration> = retry_delays(first, max).take(50).collect();
        assert_eq!(delays.len(), 50, "never ends");
        assert!(
            delays.iter().all(|d| *d >= first && *d <= max),
            "{delays:?}"
        );
        assert_eq!(delays.last(), Some(&max), "reaches the cap");
    }

    #[test]
    fn two_schedules_do_not_move_in_lockstep() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(60);
        let a: Vec<Duration> = retry_delays(first, max).take(8).collect();
        let b: Vec<Duration> = retry_delays(first, max).take(8).collect();
        assert_ne!(a, b, "jitter");
    }
}
