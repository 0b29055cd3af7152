//! `GET /api/v1/audit`: the audit log, newest first, paged by cursor.
//! Admins only once tokens are on (the authorization layer decides).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, page_params};
use super::state::AppState;
use crate::model::audit::AuditEntry;
use crate::model::format_millis;
use crate::store::AuditQuery;

/// Query of `GET /api/v1/audit`. An empty filter is no filter; unknown
/// parameters are a 400.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only entries whose actor acted as this user id.
    pub actor: Option<String>,
    /// Only this action: `job.submit`, `job.cancel`, `job.restart`,
    /// `pipeline.submit`, `batch.submit`, `token.create`, `token.revoke`,
    /// `schedule.create`, `schedule.pause`, `schedule.resume` or
    /// `schedule.delete`.
    #[param(
        pattern = r"^(job\.submit|job\.cancel|job\.restart|pipeline\.submit|batch\.submit|token\.create|token\.revoke|schedule\.(create|pause|resume|delete))?$"
    )]
    pub action: Option<String>,
    /// Only entries about this job id or token id.
    pub target: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page: an entry id (a UUID).
    #[param(value_type = Option<uuid::Uuid>)]
    pub cursor: Option<String>,
}

/// Who made a change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ActorView {
    /// The user the caller acted as (`X-User-Id`, or the token's user).
    pub user_id: Option<String>,
    /// The id of the caller's token (never its value).
    pub token_id: Option<String>,
    /// The token's role.
    pub role: Option<String>,
}

/// One audit entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AuditEntryView {
    /// The entry's id, a UUID v7: ids sort by time.
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// When the change was made (UTC RFC 3339, `Z`).
    pub at: String,
    /// Who made it.
    pub actor: ActorView,
    /// What it was.
    #[schema(example = "job.submit")]
    pub action: String,
    /// What it was done to: a job id or a token id.
    pub target: Option<String>,
    /// The TCP peer the request came from, `IP:port`.
    pub remote_addr: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(entry: AuditEntry) -> Self {
        AuditEntryView {
            id: entry.id.to_string(),
            at: format_millis(entry.at),
            actor: ActorView {
                user_id: entry.actor.user_id,
                token_id: entry.actor.token_id,
                role: entry.actor.role,
            },
            action: entry.action.as_str().to_owned(),
            target: entry.target,
            remote_addr: entry.remote_addr,
            status: entry.status,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AuditPageView {
    /// The entries.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `cursor` for the next page; null on the last.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/audit`.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    summary = "Read the audit log, newest first",
    description = "Every successful mutation (job submit, cancel and restart, pipeline and batch submit, token \
        create and revoke): who, what, when, from where. This process's entries not yet written \
        are written first, so its own changes are there; other nodes' within a fraction of a second.",
    params(AuditParams),
    responses(
        (status = 200, description = "A page of entries", body = AuditPageView),
        (status = 400, description = "`ValidationError`: a bad limit, cursor, action or unknown parameter", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPageView>, ApiError> {
    let (limit, before) = page_params(params.limit, params.cursor, "an entry")?;
    let action = params
        .action
        .filter(|a| !a.is_empty())
        .map(|a| a.parse())
        .transpose()
        .map_err(ApiError::Validation)?;
    let query = AuditQuery {
        user_id: params.actor.filter(|a| !a.is_empty()),
        action,
        target: params.target.filter(|t| !t.is_empty()),
        limit,
        before,
    };
    state.audit.flush().await?;
    let page = state.store.list_audit(&query).await?;
    Ok(Json(AuditPageView {
        entries: page.entries.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor.map(|id| id.to_string()),
    }))
}
