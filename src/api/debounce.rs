//! Debounced submissions: the body's `debounce` object, checked and turned
//! into the store's [`Debounce`]. A burst of submissions with one key
//! collapses into one job, which starts a period after the last of them
//! but never later than the longest wait after the first.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::model::{Debounce, Millis};

/// The header set on a response whose submission collapsed into the
/// waiting job of its debounce key.
pub(crate) const DEBOUNCED_HEADER: &str = "debounced";

/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// Longest period or wait: a year, as the furthest a job may be delayed.
const MAX_SECONDS: f64 = 366.0 * 86400.0;

/// The `debounce` object of a submission.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "reindex-alice", "period_seconds": 5, "max_wait_seconds": 60}))]
pub(crate) struct DebounceRequest {
    /// Submissions of one user and job type with this key collapse into
    /// one job while it waits. 1 to 255 visible ASCII characters.
    #[schema(min_length = 1, max_length = 255, pattern = "^[!-~]+$")]
    pub key: String,
    /// The job starts this long after the last submission (above 0, at
    /// most a year).
    pub period_seconds: f64,
    /// ... but never later than this long after the first (above 0, at
    /// most a year; default a year, that is no cap).
    pub max_wait_seconds: Option<f64>,
}

impl DebounceRequest {
    /// The store's debounce, or a 400 for a bad key or time.
    pub(crate) fn validate(self) -> Result<Debounce, ApiError> {
        let key = self.key;
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "debounce.key is 1 to {MAX_KEY_LEN} visible ASCII characters"
            )));
        }
        let period = seconds("period_seconds", self.period_seconds)?;
        let max_wait = seconds(
            "max_wait_seconds",
            self.max_wait_seconds.unwrap_or(MAX_SECONDS),
        )?;
        Ok(Debounce {
            key,
            period_millis: period,
            max_wait_millis: max_wait,
        })
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::Validation(message)
}

/// `value` seconds in milliseconds, if above 0 and at most a year.
fn seconds(name: &str, value: f64) -> Result<Millis, ApiError> {
    if !(value > 0.0 && value <= MAX_SECONDS) {
        return Err(invalid(format!(
            "debounce.{name} must be above 0 and at most {MAX_SECONDS}"
        )));
    }
    Ok(((value * 1000.0).ceil() as Millis).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, period: f64, max_wait: Option<f64>) -> DebounceRequest {
        DebounceRequest {
            key: key.to_owned(),
            period_seconds: period,
            max_wait_seconds: max_wait,
        }
    }

    #[test]
    fn keys_and_times_are_checked() {
        let ok = request("k", 1.5, Some(10.0)).validate().unwrap();
        assert_eq!((ok.period_millis, ok.max_wait_millis), (1500, 10_000));
        let uncapped = request("k", 1.0, None).validate().unwrap();
        assert_eq!(uncapped.max_wait_millis, (MAX_SECONDS * 1000.0) as Millis);
        for bad in [
            request("", 1.0, None),
            request("with space", 1.0, None),
            request("k", 0.0, None),
            request("k", f64::NAN, None),
            request("k", 1.0, Some(-1.0)),
            request("k", MAX_SECONDS + 1.0, None),
        ] {
            assert!(bad.clone().validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_job_is_due_a_period_after_the_last_but_within_the_wait() {
        let d = request("k", 2.0, Some(5.0)).validate().unwrap();
        assert_eq!(d.first_due(1_000), 3_000);
        assert_eq!(d.due(1_000, 2_000), 4_000);
        assert_eq!(d.due(1_000, 5_000), 6_000, "capped at first + max_wait");
        let short = request("k", 9.0, Some(1.0)).validate().unwrap();
        assert_eq!(short.first_due(0), 1_000);
    }
}
