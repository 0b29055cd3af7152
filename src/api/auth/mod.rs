//! Who calls, and whether the route admits them. With `auth = "none"`
//! every caller is [`Caller::open`]: anyone may do anything, as the user
//! `X-User-Id` names (the seed's behaviour). With `auth = "token"` every
//! route but the public ones needs `Authorization: Bearer <token>`, and the
//! token's role decides ([`policy`]); handlers then hide other users' jobs
//! through [`Caller::check_sees`], which answers 404 exactly as for a job
//! that does not exist.
//!
//! A browser's `EventSource` cannot send headers, so the routes that
//! follow one job also take the token as the `access_token` query
//! parameter, but only a job-scoped token (short-lived, one job): no
//! long-lived secret ever travels in a URL. The parameter is taken off the
//! request before the handler sees it.

pub(crate) mod policy;
pub(crate) mod secret;
pub(crate) mod verifier;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use self::policy::Access;
pub(crate) use self::verifier::Grant;
use self::verifier::Verifier;
use super::audit::Requester;
use super::backpressure::stream_slots::StreamSlot;
use super::error::ApiError;
use super::extract::check_user_id;
use super::state::AppState;
use crate::config::AuthMode;
use crate::model::audit::Actor;
use crate::model::{Job, Role};

/// Who is calling, as the handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    who: Who,
    /// `X-User-Id`, checked: the user an open caller or an admin acts for;
    /// a user token's own user, or a 403.
    user_header: Option<String>,
}

#[derive(Debug, Clone)]
enum Who {
    /// `auth = "none"`.
    Open,
    /// No token, on a public route.
    Anonymous,
    /// A verified token.
    Token(Grant),
}

impl Caller {
    /// An open caller (`auth = "none"`) acting as `user`.
    pub(crate) fn open(user: Option<String>) -> Caller {
        Caller {
            who: Who::Open,
            user_header: user,
        }
    }

    /// The token's grant, if the caller has one.
    pub(crate) fn grant(&self) -> Option<&Grant> {
        match &self.who {
            Who::Token(grant) => Some(grant),
            Who::Open | Who::Anonymous => None,
        }
    }

    /// The user `X-User-Id` names, if any.
    pub(crate) fn named_user(&self) -> Option<&str> {
        self.user_header.as_deref()
    }

    /// The user a submission belongs to, given the one its body names:
    /// the body's, else `X-User-Id`'s (for an admin, else its own); a user
    /// token's own user, and naming another is a 403. `None` lets the
    /// submission default.
    pub(crate) fn submitter(&self, named: Option<String>) -> Result<Option<String>, ApiError> {
        let named = named.or_else(|| self.user_header.clone());
        match &self.who {
            Who::Open => Ok(named),
            Who::Anonymous => Err(ApiError::Unauthorized),
            Who::Token(grant) => match grant.role {
                Role::Admin => Ok(named.or_else(|| Some(grant.user_id.clone()))),
                _ => match named {
                    Some(user) if user != grant.user_id => Err(ApiError::Forbidden(format!(
                        "this token acts only as user '{}'",
                        grant.user_id
                    ))),
                    _ => Ok(Some(grant.user_id.clone())),
                },
            },
        }
    }

    /// The user filter of a listing asked for `requested`: a user token's
    /// own user (another is a 403), else as asked.
    pub(crate) fn listing_user(
        &self,
        requested: Option<String>,
    ) -> Result<Option<String>, ApiError> {
        match self.grant() {
            Some(grant) if grant.role == Role::User => match requested {
                Some(user) if user != grant.user_id => Err(ApiError::Forbidden(format!(
                    "this token sees only the jobs of user '{}'",
                    grant.user_id
                ))),
                _ => Ok(Some(grant.user_id.clone())),
            },
            _ => Ok(requested),
        }
    }

    /// Whether the caller may see `job` at all.
    pub(crate) fn sees(&self, job: &Job) -> bool {
        match &self.who {
            Who::Open => true,
            Who::Anonymous => false,
            Who::Token(grant) => match (grant.job_id, grant.role) {
                (Some(only), _) => only == job.id,
                (None, Role::Admin | Role::Viewer) => true,
                (None, Role::User) => grant.user_id == job.user_id,
                (None, Role::Worker) => false,
            },
        }
    }

    /// `Ok` if the caller may see `job`; else the 404 a job that does not
    /// exist gets, so that existence does not leak.
    pub(crate) fn check_sees(&self, job: &Job) -> Result<(), ApiError> {
        if self.sees(job) {
            Ok(())
        } else {
            Err(ApiError::JobNotFound(job.id))
        }
    }

    /// Whether seeing a job needs its owner checked: a handler that acts on
    /// a job by id reads it first only then.
    pub(crate) fn sees_everything(&self) -> bool {
        match &self.who {
            Who::Open => true,
            Who::Anonymous => false,
            Who::Token(grant) => {
                grant.job_id.is_none() && matches!(grant.role, Role::Admin | Role::Viewer)
            }
        }
    }

    /// The key that per-caller limits count under: the token's id, else the
    /// user the caller names, else `anonymous`.
    pub(crate) fn limit_key(&self) -> &str {
        match (&self.who, &self.user_header) {
            (Who::Token(grant), _) => &grant.token_id,
            (_, Some(user)) => user,
            _ => "anonymous",
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// The caller [`authenticate`] found. Every route is under it, so a
    /// handler without one is a bug, answered 500.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None => Err(ApiError::Internal("the route was not authenticated".into())),
        }
    }
}

/// A slot under the caps on open streams and long-polls, taken for the
/// caller ([`Caller::limit_key`]: its token, else its `X-User-Id`) before
/// the handler runs: a 429 `TooManyStreamsError` when none is free.
impl FromRequestParts<AppState> for StreamSlot {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        state.backpressure.stream_slots.acquire(caller.limit_key())
    }
}

/// Who made the request and from where, for the audit log: the caller's
/// user, token id and role, and the TCP peer that `api::listen` puts on
/// every request as axum's `ConnectInfo`.
impl<S: Send + Sync> FromRequestParts<S> for Requester {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let actor = match caller.grant() {
            Some(grant) => Actor {
                user_id: Some(grant.user_id.clone()),
                token_id: Some(grant.token_id.clone()),
                role: Some(grant.role.as_str().to_owned()),
            },
            None => Actor {
                user_id: caller.named_user().map(str::to_owned),
                ..Actor::default()
            },
        };
        let remote_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        Ok(Requester { actor, remote_addr })
    }
}

/// The middleware's state: the mode and the token checker.
#[derive(Clone)]
pub(crate) struct Gate {
    mode: AuthMode,
    verifier: Verifier,
}

impl Gate {
    pub(crate) fn new(mode: AuthMode, verifier: Verifier) -> Gate {
        Gate { mode, verifier }
    }

    /// The caller of `request`, if the route admits them.
    async fn caller(&self, request: &mut Request) -> Result<Caller, ApiError> {
        let access = request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|path| policy::access(request.method(), path.as_str()));
        // Public routes act for no user: their X-User-Id is not read.
        if access == Some(Access::Public) {
            return Ok(Caller {
                who: Who::Anonymous,
                user_header: None,
            });
        }
        let user_header = user_header(request.headers())?;
        if self.mode == AuthMode::None {
            return Ok(Caller::open(user_header));
        }
        let access =
            access.ok_or_else(|| ApiError::Forbidden("no access rule covers this route".into()))?;
        let from_query = if access == Access::FollowJob {
            take_query_token(request.uri_mut())
        } else {
            None
        };
        let grant = match (bearer(request.headers())?, from_query) {
            (Some(token), _) => self.verifier.verify(token).await?,
            (None, Some(token)) => {
                let grant = self.verifier.verify(&token).await?;
                // Only a job-scoped token may travel in a URL.
                if grant.job_id.is_none() {
                    return Err(ApiError::Unauthorized);
                }
                grant
            }
            (None, None) => return Err(ApiError::Unauthorized),
        };
        if !access.admits(grant.role, grant.job_id.is_some()) {
            return Err(ApiError::Forbidden(format!(
                "a {}{} token may not call this route",
                grant.role,
                if grant.job_id.is_some() { " job" } else { "" }
            )));
        }
        Ok(Caller {
            who: Who::Token(grant),
            user_header,
        })
    }
}

/// Middleware: finds the caller, refuses what the route does not admit
/// (401, 403), and hands the [`Caller`] to the handler.
pub(crate) async fn authenticate(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> Response {
    match gate.caller(&mut request).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// The bearer token of `Authorization`, if there is that header; a header
/// that is not `Bearer <token>` is a 401.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// Takes `access_token` out of the query string, returning it.
fn take_query_token(uri: &mut Uri) -> Option<String> {
    let query = uri.query()?;
    let mut token = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("access_token=") {
            Some(value) => {
                token = Some(value.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let token = token?;
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    *uri = Uri::from_parts(parts).ok()?;
    Some(token)
}

/// `X-User-Id`, trimmed, held to the rules of [`check_user_id`].
fn user_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("x-user-id") else {
        return Ok(None);
    };
    let user = value
        .to_str()
        .map_err(|_| ApiError::Validation("X-User-Id must be visible ASCII".into()))?
        .trim();
    check_user_id("X-User-Id", user)?;
    Ok(Some(user.to_owned()))
}
