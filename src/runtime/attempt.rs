//! The rules of one attempt that every worker follows, built-in or remote
//! (over the HTTP worker protocol): when a failed attempt is retried, how
//! long an attempt may run, and which finished jobs its handler is given.

use std::sync::Arc;
use std::time::Duration;

use super::handler::Retry;
use super::registry::JobType;
use crate::model::{Job, Millis, duration_millis};
use crate::store::{Outcome, Store, error_chain};

/// Longest retry backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The outcome of a failed attempt: retried when `retry` says (never, or at
/// a time), else after `base * 2^(attempt-1)`, while attempts are left.
pub(crate) fn failed(
    job: &Job,
    base: Duration,
    error: String,
    retry: Option<Retry>,
    now: Millis,
) -> Outcome {
    Outcome::Failed {
        retry_at: retry_time(job, base, retry, now),
        error,
    }
}

/// When a failed attempt is retried, if attempts are left (see [`failed`]).
fn retry_time(job: &Job, base: Duration, retry: Option<Retry>, now: Millis) -> Option<Millis> {
    if job.attempts >= job.max_attempts {
        return None;
    }
    match retry {
        Some(Retry::Never) => return None,
        Some(Retry::At(at)) => return Some(at),
        Some(Retry::After(delay)) => return Some(now.saturating_add(duration_millis(delay))),
        None => {}
    }
    let exponent = job.attempts.saturating_sub(1).min(20);
    let delay = base.saturating_mul(1u32 << exponent).min(MAX_BACKOFF);
    Some(now.saturating_add(duration_millis(delay)))
}

/// How long an attempt of `job` may run: its own limit, else its type's.
pub(crate) fn time_limit(job: &Job, job_type: Option<&JobType>) -> Option<Duration> {
    job.timeout_seconds
        .map(Duration::from_secs_f64)
        .or(job_type.and_then(|t| t.timeout))
}

/// The job's dependencies as they are now (completed, with their results);
/// any that cannot be read (deleted by retention) are left out.
pub(crate) async fn dependencies(store: &dyn Store, job: &Job) -> Vec<Arc<Job>> {
    let mut dependencies = Vec::with_capacity(job.depends_on.len());
    for id in &job.depends_on {
        match store.get(*id).await {
            Ok(dependency) => dependencies.push(Arc::new(dependency)),
            Err(e) => {
                tracing::warn!(job_id = %job.id, dependency = %id, error = %error_chain(&e), "dependency not readable")
            }
        }
    }
    dependencies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobStatus, Progress};
    use serde_json::Value;

    fn job(attempts: u32, max_attempts: u32) -> Job {
        Job {
            id: uuid::Uuid::now_v7(),
            job_type: "noop".into(),
            remote: false,
            user_id: "u".into(),
            concurrency_key: None,
            status: JobStatus::Running,
            priority: 0,
            parameters: Value::Null,
            result: None,
            error: None,
            progress: Progress::default(),
            attempts,
            max_attempts,
            interruptions: 0,
            timeout_seconds: None,
            created_at: 0,
            scheduled_for: None,
            started_at: None,
            completed_at: None,
            updated_at: 0,
            worker_id: None,
            revision: 1,
            depends_on: Vec::new(),
            waiting_dependencies: 0,
            cancelled_by: None,
            expires_at: None,
            schedule: None,
        }
    }

    #[test]
    fn retries_back_off_exponentially_until_attempts_run_out() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_time(&job(1, 3), base, None, 0), Some(5_000));
        assert_eq!(retry_time(&job(2, 3), base, None, 0), Some(10_000));
        assert_eq!(retry_time(&job(3, 3), base, None, 0), None);
        assert_eq!(retry_time(&job(1, 1), base, None, 0), None);
    }

    #[test]
    fn a_stated_retry_overrides_the_rule() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_time(&job(1, 3), base, Some(Retry::Never), 0), None);
        assert_eq!(
            retry_time(&job(1, 3), base, Some(Retry::At(42_000)), 0),
            Some(42_000)
        );
        let after = Retry::After(Duration::from_secs(30));
        assert_eq!(
            retry_time(&job(1, 3), base, Some(after), 1_000),
            Some(31_000)
        );
        assert_eq!(
            retry_time(&job(3, 3), base, Some(Retry::At(42_000)), 0),
            None,
            "no attempts left"
        );
    }
}
