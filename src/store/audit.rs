//! The audit log as the stores keep it: entries appended in batches (the
//! API buffers them, `api::audit`), read newest first in pages, deleted
//! past `audit_retention` by the cleanup pass.

use uuid::Uuid;

use crate::model::audit::{AuditAction, AuditEntry};

/// Filters and page of an audit listing, newest first.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// Only entries whose actor acted as this user.
    pub user_id: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only entries about this job or token id.
    pub target: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Only entries older than this one (the previous page's last id).
    pub before: Option<Uuid>,
}

impl Default for AuditQuery {
    /// Every entry, a page of 50.
    fn default() -> Self {
        AuditQuery {
            user_id: None,
            action: None,
            target: None,
            limit: 50,
            before: None,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Uuid>,
}
