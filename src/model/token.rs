//! API tokens: who a bearer token speaks for, with which role, until when.
//! The secret itself is never here, only its SHA-256 (made and checked by
//! the API's `auth` module).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{JobId, Millis};

/// What a token's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, for every user; may submit on behalf of a user.
    Admin,
    /// Submits and manages the jobs of its own user only.
    User,
    /// Reads every job and the queue; changes nothing.
    Viewer,
    /// The HTTP worker protocol only.
    Worker,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::User, Role::Viewer, Role::Worker];

    /// The role as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Viewer => "viewer",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that names no role.
#[derive(Debug, thiserror::Error)]
#[error("unknown role '{0}' (expected one of admin, user, viewer, worker)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// A token as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Public identifier, part of the token string; names it in listings,
    /// revocation and the audit log.
    pub id: String,
    /// Hex SHA-256 of the token's secret part.
    pub secret_hash: String,
    /// The user it acts as.
    pub user_id: String,
    /// What it may do.
    pub role: Role,
    /// Set for a token limited to one job's status, poll and stream.
    pub job_id: Option<JobId>,
    /// When it was made.
    pub created_at: Millis,
    /// When it stops working, if ever.
    pub expires_at: Option<Millis>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Millis>,
}

impl ApiToken {
    /// True while the token may be used: not revoked, not expired.
    pub fn live_at(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}
