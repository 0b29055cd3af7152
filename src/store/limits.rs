//! Limits a claim keeps beyond the global and per-user ones: per job type,
//! a running limit per concurrency key and for the type as a whole, and a
//! rate of starts; and per-user weights of the round-robin. They come from
//! the claiming worker's configuration (every node of a cluster shares it)
//! and are enforced inside the store's atomic claim.

use std::collections::BTreeMap;
use std::time::Duration;

/// A job type's limits; `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeLimits {
    /// Jobs of the type with one concurrency key running at once, at most.
    pub per_key_max: Option<usize>,
    /// Jobs of the type running at once, at most.
    pub type_max: Option<usize>,
    /// Starts of the type (or of each key) per window, at most.
    pub rate: Option<RateLimit>,
}

/// At most `count` starts in a window of `per`, which opens at the first
/// start after the last window closed (as BullMQ's limiter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Starts per window.
    pub count: usize,
    /// The window's length.
    pub per: Duration,
    /// One window per concurrency key rather than one for the type.
    pub per_key: bool,
}

/// Every limit a claim keeps beyond the global and per-user ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Limits by job type; a type not named has none.
    pub types: BTreeMap<String, TypeLimits>,
    /// Round-robin weights by user: a user of weight w gets up to w times
    /// the share of others per round. A user not named weighs 1.
    pub user_weights: BTreeMap<String, u32>,
}

/// Separates a key from its type in a scope's name (not a character a job
/// type or a key is likely to hold; either may, harmlessly).
pub(crate) const SCOPE_SEPARATOR: char = '\u{1f}';

impl ClaimLimits {
    /// Whether any type has limits (else a claim takes the plain path).
    pub fn any(&self) -> bool {
        !self.types.is_empty()
    }

    /// The weight of `user`.
    pub fn weight(&self, user: &str) -> usize {
        self.user_weights
            .get(user)
            .map_or(1, |w| (*w).max(1) as usize)
    }
}

/// A per-key scope's name: the type and the key.
pub(crate) fn key_scope(job_type: &str, key: &str) -> String {
    format!("{job_type}{SCOPE_SEPARATOR}{key}")
}

impl ClaimLimits {
    /// The limits the configuration declares.
    pub fn from_settings(settings: &crate::config::Settings) -> ClaimLimits {
        let types = settings
            .job_types
            .iter()
            .filter_map(|(name, t)| {
                let limits = TypeLimits {
                    per_key_max: t.max_concurrent_per_key,
                    type_max: t.max_concurrent,
                    rate: t.rate_limit.map(|r| RateLimit {
                        count: r.count,
                        per: Duration::from_secs_f64(r.per_seconds),
                        per_key: r.per_key,
                    }),
                };
                (limits != TypeLimits::default()).then(|| (name.clone(), limits))
            })
            .collect();
        ClaimLimits {
            types,
            user_weights: settings.user_weights.clone(),
        }
    }
}

/// The scope of a rate limit's window for a job of `job_type` with `key`:
/// the type, or with `per_key` the type and the key (a job without a key
/// then has no window: `None`).
pub fn rate_scope(job_type: &str, key: Option<&str>, per_key: bool) -> Option<String> {
    match (per_key, key) {
        (false, _) => Some(job_type.to_owned()),
        (true, Some(key)) => Some(key_scope(job_type, key)),
        (true, None) => None,
    }
}
