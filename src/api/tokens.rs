//! The token API: `POST /api/v1/tokens` makes a token and shows its secret
//! once; `GET /api/v1/tokens` lists tokens without secrets;
//! `DELETE /api/v1/tokens/{token_id}` revokes one (refused on every node
//! within [`CACHE_FOR`](super::auth::verifier::CACHE_FOR)). Admins manage every token; any other caller may
//! only make a job token (status, poll and stream of one job) for a job it
//! may see.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::Requester;
use super::auth::Caller;
use super::auth::secret::mint;
use super::auth::verifier::Verifier;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, JsonBody, check_user_id};
use super::schema::RoleSchema;
use super::state::AppState;
use crate::config::AuthMode;
use crate::model::audit::AuditAction;
use crate::model::{ApiToken, JobId, Role, format_millis};

/// Lifetime of a job token unless the request says otherwise: 15 minutes.
const JOB_TOKEN_SECONDS: f64 = 15.0 * 60.0;

/// The longest lifetime a request may ask for: ten years.
const MAX_TOKEN_SECONDS: f64 = 10.0 * 365.0 * 86400.0;

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTokenRequest {
    /// The user the token acts as. Required unless `job_id` is given (then
    /// it is the job's user).
    pub user_id: Option<String>,
    /// What it may do. Required unless `job_id` is given (then `viewer`).
    #[schema(value_type = Option<RoleSchema>)]
    pub role: Option<String>,
    /// Seconds until it stops working (default: never; a job token 900).
    #[schema(minimum = 1)]
    pub expires_in_seconds: Option<f64>,
    /// Limits the token to this job's status, poll and stream.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub job_id: Option<JobId>,
}

/// A token, without its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TokenView {
    /// Its id: names it in listings, revocation and the audit log.
    pub token_id: String,
    /// The user it acts as.
    pub user_id: String,
    /// What it may do.
    #[schema(value_type = RoleSchema)]
    pub role: Role,
    /// The job it is limited to, if any.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub job_id: Option<JobId>,
    /// When it was made.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it stops working, if ever.
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
    /// When it was revoked, if it was.
    #[schema(format = DateTime, required = true)]
    pub revoked_at: Option<String>,
}

impl From<&ApiToken> for TokenView {
    fn from(token: &ApiToken) -> TokenView {
        TokenView {
            token_id: token.id.clone(),
            user_id: token.user_id.clone(),
            role: token.role,
            job_id: token.job_id,
            created_at: format_millis(token.created_at),
            expires_at: token.expires_at.map(format_millis),
            revoked_at: token.revoked_at.map(format_millis),
        }
    }
}

/// Answer of `POST /api/v1/tokens`: the token, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct CreatedToken {
    /// The bearer token. It is not stored and cannot be shown again.
    pub token: String,
    /// What it is.
    #[serde(flatten)]
    pub view: TokenView,
}

/// Answer of `GET /api/v1/tokens`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TokenList {
    /// Every token, newest first.
    pub tokens: Vec<TokenView>,
}

/// `POST /api/v1/tokens`.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    summary = "Make a token",
    description = "Admins make any token. Any other token's holder may make a job token \
        (`job_id`, role `viewer`) for a job it may see: what a browser needs to follow one \
        job without holding the user's token. Needs `auth = \"token\"`.",
    request_body(content = CreateTokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The token; its secret is shown only now", body = CreatedToken),
        (status = 400, description = "`ValidationError`", body = ErrorBody),
        (status = 401, description = "`UnauthorizedError`", body = ErrorBody),
        (status = 403, description = "`ForbiddenError`: not an admin, or `auth = \"none\"`", body = ErrorBody),
        (status = 404, description = "`JobNotFoundError`: the job does not exist or is not the caller's", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    requester: Requester,
    JsonBody(body): JsonBody<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if state.settings.auth == AuthMode::None {
        return Err(ApiError::Forbidden(
            "tokens are made only with auth = \"token\"".into(),
        ));
    }
    let request = body.ok_or_else(|| ApiError::Validation("a JSON body is required".into()))?;
    let is_admin = caller.grant().is_some_and(|g| g.role == Role::Admin);
    let role = match request.role.as_deref() {
        Some(text) => text
            .parse::<Role>()
            .map_err(|e| ApiError::Validation(e.to_string()))?,
        None if request.job_id.is_some() => Role::Viewer,
        None => return Err(ApiError::Validation("role is required".into())),
    };
    let user_id = match request.job_id {
        Some(job_id) => {
            let job = state.store.get(job_id).await?;
            caller.check_sees(&job)?;
            if request.user_id.as_ref().is_some_and(|u| *u != job.user_id) {
                return Err(ApiError::Validation(
                    "user_id must be the job's user (or left out)".into(),
                ));
            }
            if !is_admin && role != Role::Viewer {
                return Err(ApiError::Forbidden(
                    "a job token made by a non-admin has the role viewer".into(),
                ));
            }
            job.user_id
        }
        None if !is_admin => {
            return Err(ApiError::Forbidden(
                "only an admin makes tokens other than job tokens".into(),
            ));
        }
        None => request
            .user_id
            .ok_or_else(|| ApiError::Validation("user_id is required".into()))?,
    };
    check_user_id("user_id", &user_id)?;
    let lifetime = match (request.expires_in_seconds, request.job_id) {
        (Some(seconds), _) if (1.0..=MAX_TOKEN_SECONDS).contains(&seconds) => Some(seconds),
        (Some(seconds), _) => {
            return Err(ApiError::Validation(format!(
                "expires_in_seconds must be between 1 and {MAX_TOKEN_SECONDS}, got {seconds}"
            )));
        }
        (None, Some(_)) => Some(JOB_TOKEN_SECONDS),
        (None, None) => None,
    };
    let minted = mint().map_err(|e| ApiError::Internal(format!("no random bytes: {e}")))?;
    let now = state.store.clock().now();
    let token = ApiToken {
        id: minted.id,
        secret_hash: minted.secret_hash,
        user_id,
        role,
        job_id: request.job_id,
        created_at: now,
        expires_at: lifetime.map(|seconds| now + (seconds * 1000.0) as i64),
        revoked_at: None,
    };
    state.store.create_token(&token).await?;
    state.audit.record(
        &requester,
        AuditAction::TokenCreate,
        Some(token.id.clone()),
        StatusCode::CREATED.as_u16(),
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: minted.token,
            view: TokenView::from(&token),
        }),
    ))
}

/// Answer of `GET /api/v1/me`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Me {
    /// The server's `auth` setting: `none` or `token`.
    pub auth: String,
    /// The user the caller acts as (with `auth = "none"`, `X-User-Id`'s).
    #[schema(required = true)]
    pub user_id: Option<String>,
    /// The token's role; `admin` with `auth = "none"` (anyone may do
    /// anything).
    #[schema(value_type = RoleSchema)]
    pub role: Role,
    /// The token's id.
    #[schema(required = true)]
    pub token_id: Option<String>,
    /// The one job the token is limited to, if any.
    #[schema(value_type = Option<uuid::Uuid>, required = true)]
    pub job_id: Option<JobId>,
}

/// `GET /api/v1/me`.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "tokens",
    summary = "Who the caller is",
    description = "The caller's user, role and token, so that a client (the dashboard) shows \
        only what the role allows.",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "`UnauthorizedError`", body = ErrorBody),
    )
)]
pub(crate) async fn me(State(state): State<AppState>, caller: Caller) -> Json<Me> {
    let auth = match state.settings.auth {
        AuthMode::None => "none",
        AuthMode::Token => "token",
    };
    Json(match caller.grant() {
        Some(grant) => Me {
            auth: auth.to_owned(),
            user_id: Some(grant.user_id.clone()),
            role: grant.role,
            token_id: Some(grant.token_id.clone()),
            job_id: grant.job_id,
        },
        None => Me {
            auth: auth.to_owned(),
            user_id: caller.named_user().map(str::to_owned),
            role: Role::Admin,
            token_id: None,
            job_id: None,
        },
    })
}

/// `GET /api/v1/tokens`.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    summary = "List tokens (admin)",
    description = "Every token, newest first, without secrets.",
    responses(
        (status = 200, description = "The tokens", body = TokenList),
        (status = 401, description = "`UnauthorizedError`", body = ErrorBody),
        (status = 403, description = "`ForbiddenError`: not an admin", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.store.tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(TokenView::from).collect(),
    }))
}

/// `DELETE /api/v1/tokens/{token_id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{token_id}",
    tag = "tokens",
    summary = "Revoke a token (admin)",
    description = "The token is refused from now on, on every node within a second. \
        Revoking a revoked token changes nothing.",
    params(("token_id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "The token, revoked", body = TokenView),
        (status = 401, description = "`UnauthorizedError`", body = ErrorBody),
        (status = 403, description = "`ForbiddenError`: not an admin", body = ErrorBody),
        (status = 404, description = "`TokenNotFoundError`", body = ErrorBody),
        (status = 503, description = "`StoreUnavailableError`", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Extension(verifier): Extension<Verifier>,
    requester: Requester,
    ApiPath(token_id): ApiPath<String>,
) -> Result<Json<TokenView>, ApiError> {
    let token = state
        .store
        .revoke_token(&token_id)
        .await?
        .ok_or(ApiError::TokenNotFound(token_id))?;
    verifier.forget(&token.id);
    state.audit.record(
        &requester,
        AuditAction::TokenRevoke,
        Some(token.id.clone()),
        StatusCode::OK.as_u16(),
    );
    Ok(Json(TokenView::from(&token)))
}
