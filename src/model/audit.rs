//! The audit log's entries: who changed what, when, from where, and how
//! it ended. Never a secret (no token value, no job parameters). Pure
//! data, no I/O.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use uuid::{ContextV7, Timestamp, Uuid};

use super::Millis;

/// Who made a change: the user it acted as, and once requests carry
/// tokens, the token and its role. Every part is optional (a request
/// without a token under `auth = "none"` has a user id at most).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user the caller acted as.
    pub user_id: Option<String>,
    /// The id (never the value) of the caller's token.
    pub token_id: Option<String>,
    /// The token's role: `admin`, `user`, `viewer` or `worker`.
    pub role: Option<String>,
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    /// `POST /api/v1/jobs`.
    #[serde(rename = "job.submit")]
    JobSubmit,
    /// `POST /api/v1/jobs/cancel/{job_id}`.
    #[serde(rename = "job.cancel")]
    JobCancel,
    /// `POST /api/v1/jobs/restart/{job_id}`.
    #[serde(rename = "job.restart")]
    JobRestart,
    /// `POST /api/v1/jobs/pipeline`: one entry per job of the chain.
    #[serde(rename = "pipeline.submit")]
    PipelineSubmit,
    /// `POST /api/v1/jobs/batch`: one entry per job of the batch.
    #[serde(rename = "batch.submit")]
    BatchSubmit,
    /// A token created.
    #[serde(rename = "token.create")]
    TokenCreate,
    /// A token revoked.
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    /// A schedule created.
    #[serde(rename = "schedule.create")]
    ScheduleCreate,
    /// A schedule paused.
    #[serde(rename = "schedule.pause")]
    SchedulePause,
    /// A schedule resumed.
    #[serde(rename = "schedule.resume")]
    ScheduleResume,
    /// A schedule deleted.
    #[serde(rename = "schedule.delete")]
    ScheduleDelete,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 11] = [
        AuditAction::JobSubmit,
        AuditAction::JobCancel,
        AuditAction::JobRestart,
        AuditAction::PipelineSubmit,
        AuditAction::BatchSubmit,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::ScheduleCreate,
        AuditAction::SchedulePause,
        AuditAction::ScheduleResume,
        AuditAction::ScheduleDelete,
    ];

    /// The name the API and the stores use.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::JobSubmit => "job.submit",
            AuditAction::JobCancel => "job.cancel",
            AuditAction::JobRestart => "job.restart",
            AuditAction::PipelineSubmit => "pipeline.submit",
            AuditAction::BatchSubmit => "batch.submit",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::ScheduleCreate => "schedule.create",
            AuditAction::SchedulePause => "schedule.pause",
            AuditAction::ScheduleResume => "schedule.resume",
            AuditAction::ScheduleDelete => "schedule.delete",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = String;

    fn from_str(s: &str) -> Result<AuditAction, String> {
        AuditAction::ALL
            .into_iter()
            .find(|action| action.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                format!(
                    "unknown action '{s}' (expected one of {})",
                    known.join(", ")
                )
            })
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// A UUID v7 whose time is `at`: ids sort by time ([`AuditEntry::new`]).
    pub id: Uuid,
    /// When the change was made, ms.
    pub at: Millis,
    /// Who made it.
    pub actor: Actor,
    /// What it was.
    pub action: AuditAction,
    /// What it was done to: a job id or a token id; none when a refused
    /// attempt named nothing that exists.
    pub target: Option<String>,
    /// The TCP peer the request came from (`IP:port`), when known.
    pub remote_addr: Option<String>,
    /// The HTTP status the request was answered with.
    pub status: u16,
}

/// Makes entry ids in order, even within one millisecond. One per
/// recorder (not one per process: each store's clock is its own, and a
/// shared source would carry one clock's time into another's ids).
#[derive(Debug, Default)]
pub struct AuditIds(Mutex<ContextV7>);

impl AuditIds {
    /// A new source of ids.
    pub fn new() -> AuditIds {
        AuditIds::default()
    }

    /// A new id for `now`.
    fn next(&self, now: Millis) -> Uuid {
        let now = u64::try_from(now).unwrap_or(0);
        let context = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let nanos = u32::try_from(now % 1000).unwrap_or(0) * 1_000_000;
        Uuid::new_v7(Timestamp::from_unix(&*context, now / 1000, nanos))
    }
}

impl AuditEntry {
    /// An entry made at `now` (the store's clock), with a new id from
    /// `ids`. `at` is the time the id carries: `now`, or a moment later
    /// should the clock have stepped back since the previous entry (ids
    /// never go back), so an entry's id and time always agree (the Redis
    /// store finds old entries by id).
    pub fn new(
        ids: &AuditIds,
        now: Millis,
        actor: Actor,
        action: AuditAction,
        target: Option<String>,
        remote_addr: Option<String>,
        status: u16,
    ) -> AuditEntry {
        let id = ids.next(now);
        AuditEntry {
            at: id_millis(id),
            id,
            actor,
            action,
            target,
            remote_addr,
            status,
        }
    }
}

/// The time a UUID v7 carries, ms (its first 48 bits).
pub fn id_millis(id: Uuid) -> Millis {
    let b = id.as_bytes();
    let ms = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
    Millis::try_from(ms).unwrap_or(Millis::MAX)
}

/// The start of the text of every UUID v7 made at `at` or later: ids
/// whose text sorts below it were made before `at`.
pub fn id_prefix_at(at: Millis) -> String {
    let ms = u64::try_from(at).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ids: &AuditIds, at: Millis) -> AuditEntry {
        AuditEntry::new(
            ids,
            at,
            Actor::default(),
            AuditAction::JobSubmit,
            None,
            None,
            201,
        )
    }

    #[test]
    fn ids_carry_their_time_and_sort_by_it() {
        let ids = AuditIds::new();
        let a = entry(&ids, 1_700_000_000_123);
        let b = entry(&ids, 1_700_000_000_123);
        let c = entry(&ids, 1_700_000_000_124);
        assert_eq!(a.at, 1_700_000_000_123);
        assert!(a.id < b.id && b.id < c.id);
        assert!(a.id.to_string() < b.id.to_string());
        assert!(a.id.to_string() >= id_prefix_at(a.at));
        assert!(a.id.to_string() < id_prefix_at(a.at + 1));
    }

    #[test]
    fn actions_read_back_by_name() {
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse::<AuditAction>(), Ok(action));
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::json!(action.as_str())
            );
        }
        assert!("job.delete".parse::<AuditAction>().is_err());
    }
}
