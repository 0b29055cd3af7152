//! The HTTP worker protocol (`docs/worker-protocol.md`): remote workers, in
//! any language, register, claim jobs of their types with a long-poll, end
//! attempts and claim replacements in one call, report progress, and hear
//! which of their jobs to stop. Every call carries what it needs (the
//! worker echoes its registration, and quotes its claims), so any API node
//! answers any call; what a node keeps ([`Node`]) only makes its own
//! answers prompter.

pub(crate) mod exchange;
pub(crate) mod logs;
mod node;
pub(crate) mod progress;
pub(crate) mod register;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub(crate) use self::node::Node;
use super::error::ApiError;
use super::state::AppState;
use crate::model::{JobId, Millis};
use crate::store::{ClaimParams, ClaimRef, Serves, WorkerInfo};

/// Most jobs a remote worker may run at once (and so hold, or finish, in
/// one call).
pub(crate) const MAX_CONCURRENCY: usize = 1024;

/// Most job types one worker may serve.
const MAX_JOB_TYPES: usize = 64;

/// A remote worker as it registered, echoed in each of its calls.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerBody {
    /// Its id: 1 to 128 of `[A-Za-z0-9_.:@-]`.
    pub worker_id: String,
    /// The host it runs on, as it names it.
    pub host: String,
    /// Its process id on that host (0 when it has none to give).
    #[serde(default)]
    pub pid: u32,
    /// When it registered, in milliseconds since the epoch (as `register`
    /// answered).
    pub started_at: Millis,
    /// The remote job types it runs.
    pub job_types: Vec<String>,
    /// Jobs it runs at once, 1 to 1024.
    pub concurrency: usize,
}

impl WorkerBody {
    /// The registration this body stands for, checked: every type it
    /// serves must be a remote type of this configuration.
    pub(crate) fn info(&self, state: &AppState) -> Result<WorkerInfo, ApiError> {
        let id_ok = (1..=128).contains(&self.worker_id.len())
            && self
                .worker_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b));
        if !id_ok {
            return Err(invalid(
                "worker_id must be 1 to 128 of the characters A-Z a-z 0-9 _ . : @ -",
            ));
        }
        if self.host.is_empty() || self.host.len() > 255 || self.host.chars().any(char::is_control)
        {
            return Err(invalid(
                "host must be 1 to 255 bytes without control characters",
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(invalid(format!(
                "concurrency must be 1 to {MAX_CONCURRENCY}"
            )));
        }
        if self.job_types.is_empty() || self.job_types.len() > MAX_JOB_TYPES {
            return Err(invalid(format!(
                "job_types must list 1 to {MAX_JOB_TYPES} remote job types"
            )));
        }
        let mut types = self.job_types.clone();
        types.sort();
        types.dedup();
        let remote = state.registry.remote_names();
        if let Some(other) = types.iter().find(|t| !remote.contains(&t.as_str())) {
            return Err(invalid(format!(
                "job type '{other}' is not served by remote workers; remote types here: {}",
                if remote.is_empty() {
                    "none (declare one with `remote = true`)".to_owned()
                } else {
                    remote.join(", ")
                }
            )));
        }
        Ok(WorkerInfo {
            worker_id: self.worker_id.clone(),
            host: self.host.clone(),
            pid: self.pid,
            started_at: self.started_at,
            concurrency: self.concurrency,
            serves: Serves::Remote(types),
        })
    }
}

/// A worker's hold on a job, as it quotes it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimBody {
    /// The job.
    #[schema(value_type = uuid::Uuid)]
    pub job_id: JobId,
    /// The claim's token, as the claim answered.
    pub token: Uuid,
}

impl From<ClaimBody> for ClaimRef {
    fn from(claim: ClaimBody) -> ClaimRef {
        ClaimRef {
            job_id: claim.job_id,
            token: claim.token,
        }
    }
}

/// A claim for up to `max_jobs` jobs of the worker's types, under the
/// shared limits.
fn claim_params(state: &AppState, info: &WorkerInfo, max_jobs: usize) -> ClaimParams {
    ClaimParams {
        worker_id: info.worker_id.clone(),
        serves: info.serves.clone(),
        max_jobs,
        global_max: state.settings.global_max_concurrent_jobs,
        per_user_max: state.settings.per_user_max_concurrent_jobs,
        limits: std::sync::Arc::new(crate::store::ClaimLimits::from_settings(&state.settings)),
        lease: state.settings.lease_timeout,
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Validation(message.into())
}
