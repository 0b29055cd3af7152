//! The per-user submission rate of this API node (`submit_rate_per_user`,
//! `submit_burst_per_user`): a token bucket per user, refilled at the rate
//! up to the burst; a submission of N jobs (a chain) takes N tokens.
//!
//! Our own few lines rather than `governor`: the bucket's arithmetic is
//! short, and eviction here is exact (a bucket that has refilled to full is
//! the same as no bucket, so dropping it forgets nothing), where governor's
//! keyed limiter needs a task of its own calling `retain_recent`.
//!
//! Per node, in memory: N API nodes behind a balancer let a user through at
//! up to N times the rate.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::api::error::ApiError;
use crate::config::SubmitRate;

/// Buckets kept before the first sweep for full ones.
const SWEEP_FLOOR: usize = 1024;

/// One user's bucket: `tokens` as of `at`. Tokens go below 0 when a chain
/// longer than the burst is let through (see [`SubmitRateLimiter::take`]).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every user who submitted lately, and when to sweep.
#[derive(Debug)]
struct Buckets {
    by_user: HashMap<String, Bucket>,
    /// Sweep when the map reaches this size: twice what the last sweep
    /// left, so sweeping costs O(1) per submission on average.
    sweep_at: usize,
}

/// The per-user submission rate of this node; no limit without a rate.
#[derive(Debug)]
pub(crate) struct SubmitRateLimiter {
    rate: Option<SubmitRate>,
    buckets: Mutex<Buckets>,
}

impl SubmitRateLimiter {
    /// A limiter at `rate` (`None`: every submission passes).
    pub(crate) fn new(rate: Option<SubmitRate>) -> SubmitRateLimiter {
        SubmitRateLimiter {
            rate,
            buckets: Mutex::new(Buckets {
                by_user: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    /// Takes `jobs` tokens from `user`'s bucket, or refuses with a 429
    /// `RateLimitedError` saying in how many seconds the bucket will hold
    /// enough. A submission of more jobs than the burst passes when the
    /// bucket is full and leaves it in debt, so a chain longer than the
    /// burst is slowed, never refused for good.
    pub(crate) fn take(&self, user: &str, jobs: usize) -> Result<(), ApiError> {
        self.take_at(user, jobs, Instant::now())
    }

    fn take_at(&self, user: &str, jobs: usize, now: Instant) -> Result<(), ApiError> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let burst = f64::from(rate.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let tokens = buckets
            .by_user
            .get(user)
            .map_or(burst, |bucket| refilled(bucket, rate, now));
        let jobs = jobs as f64;
        let needed = jobs.min(burst);
        if tokens < needed {
            let wait = ((needed - tokens) / rate.per_second).ceil().max(1.0);
            return Err(ApiError::RateLimited {
                user_id: user.to_owned(),
                per_second: rate.per_second,
                burst: rate.burst,
                retry_after: wait as u64,
            });
        }
        let bucket = Bucket {
            tokens: tokens - jobs,
            at: now,
        };
        buckets.by_user.insert(user.to_owned(), bucket);
        if buckets.by_user.len() >= buckets.sweep_at {
            buckets
                .by_user
                .retain(|_, bucket| refilled(bucket, rate, now) < burst);
            buckets.sweep_at = (2 * buckets.by_user.len()).max(SWEEP_FLOOR);
        }
        Ok(())
    }

    /// Buckets held now (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_user
            .len()
    }
}

/// The tokens `bucket` holds at `now`: refilled at the rate, up to the burst.
fn refilled(bucket: &Bucket, rate: SubmitRate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(per_second: f64, burst: u32) -> SubmitRateLimiter {
        SubmitRateLimiter::new(Some(SubmitRate { per_second, burst }))
    }

    fn retry_after(result: Result<(), ApiError>) -> u64 {
        match result {
            Err(ApiError::RateLimited { retry_after, .. }) => retry_after,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_paces() {
        let limiter = limiter(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take_at("u", 1, t0).unwrap();
        }
        assert_eq!(retry_after(limiter.take_at("u", 1, t0)), 1);
        // Another user has a bucket of its own.
        limiter.take_at("v", 3, t0).unwrap();
        // Half a second refills one token.
        limiter
            .take_at("u", 1, t0 + Duration::from_millis(500))
            .unwrap();
        assert!(
            limiter
                .take_at("u", 1, t0 + Duration::from_millis(600))
                .is_err()
        );
    }

    #[test]
    fn a_chain_costs_one_token_per_job_and_one_longer_than_the_burst_leaves_a_debt() {
        let limiter = limiter(1.0, 4);
        let t0 = Instant::now();
        limiter.take_at("u", 3, t0).unwrap();
        assert_eq!(retry_after(limiter.take_at("u", 2, t0)), 1);
        let limiter = self::limiter(1.0, 2);
        limiter.take_at("u", 5, t0).unwrap();
        // 3 tokens of debt: the next job waits 4 seconds.
        assert_eq!(retry_after(limiter.take_at("u", 1, t0)), 4);
        limiter
            .take_at("u", 1, t0 + Duration::from_secs(4))
            .unwrap();
    }

    #[test]
    fn idle_buckets_are_forgotten() {
        let limiter = limiter(100.0, 1);
        let t0 = Instant::now();
        for round in 0..20u64 {
            let now = t0 + Duration::from_secs(round);
            for user in 0..1000 {
                limiter
                    .take_at(&format!("r{round}-u{user}"), 1, now)
                    .unwrap();
            }
        }
        // 20,000 users submitted, each once: only the last rounds' remain.
        assert!(limiter.held() <= 2 * SWEEP_FLOOR, "{}", limiter.held());
    }

    #[test]
    fn without_a_rate_nothing_is_held() {
        let limiter = SubmitRateLimiter::new(None);
        for _ in 0..100 {
            limiter.take("u", 10).unwrap();
        }
        assert_eq!(limiter.held(), 0);
    }
}
