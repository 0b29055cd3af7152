//! Which callers each route admits: every route the server answers is
//! listed here by method and path template, with its [`Access`]. A route
//! missing from the list admits no token at all (it fails closed), and the
//! authorization matrix test, which walks the OpenAPI document, fails for it.

use axum::http::Method;

use crate::model::Role;

/// What a route does, as far as who may call it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, without a token: health, the API document, the dashboard's
    /// files (its data comes from the other routes).
    Public,
    /// Follow one job (status, poll, stream, artifacts): admin and viewer any job, a
    /// user its own, a job-scoped token its job.
    FollowJob,
    /// Look into one job (why it waits, its log): admin and viewer any job,
    /// a user its own.
    InspectJob,
    /// List jobs: admin and viewer all, a user its own.
    ListJobs,
    /// The queue's state (statistics, throughput, workers, the live feed),
    /// which names no user: admin, viewer, user.
    ReadQueue,
    /// Operators' metrics and the schedules, which name users: admin and
    /// viewer.
    Operate,
    /// Submit, cancel, restart: admin for anyone, a user for itself.
    ChangeJobs,
    /// The HTTP worker protocol: admin and worker.
    Work,
    /// Make a token: admin any, any other (non-job) token a job token for
    /// a job it may follow (the handler checks which).
    MintToken,
    /// Tokens, the audit log and changes to schedules: admin.
    Admin,
    /// Who the caller is (`/api/v1/me`): any token.
    Identity,
}

/// The access of the route `path` (its template, as routed) under `method`;
/// `None` for a route nobody decided on.
pub(crate) fn access(method: &Method, path: &str) -> Option<Access> {
    use Access::*;
    let get = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    Some(match path {
        "/"
        | "/dashboard/{file}"
        | "/health"
        | "/api/v1/openapi.json"
        | "/api/docs"
        | "/api/docs/{file}"
            if get =>
        {
            Public
        }
        "/api/v1/jobs/status/{job_id}"
        | "/api/v1/jobs/status/{job_id}/poll"
        | "/api/v1/jobs/status/{job_id}/stream"
        | "/api/v1/jobs/status/{job_id}/artifacts"
        | "/api/v1/jobs/status/{job_id}/artifacts/{name}"
            if get =>
        {
            FollowJob
        }
        "/api/v1/jobs/status/{job_id}/why"
        | "/api/v1/jobs/status/{job_id}/logs"
        | "/api/v1/jobs/status/{job_id}/logs/stream"
            if get =>
        {
            InspectJob
        }
        "/api/v1/jobs" if get => ListJobs,
        "/api/v1/jobs/queue/stats"
        | "/api/v1/jobs/queue/stream"
        | "/api/v1/jobs/queue/throughput"
        | "/api/v1/jobs/workers"
            if get =>
        {
            ReadQueue
        }
        "/metrics" | "/api/v1/schedules" | "/api/v1/schedules/{name}" if get => Operate,
        "/api/v1/schedules"
        | "/api/v1/schedules/{name}/pause"
        | "/api/v1/schedules/{name}/resume"
            if post =>
        {
            Admin
        }
        "/api/v1/schedules/{name}" if delete => Admin,
        "/api/v1/jobs"
        | "/api/v1/jobs/pipeline"
        | "/api/v1/jobs/batch"
        | "/api/v1/jobs/cancel/{job_id}"
        | "/api/v1/jobs/restart/{job_id}"
            if post =>
        {
            ChangeJobs
        }
        "/api/v1/workers/register"
        | "/api/v1/workers/exchange"
        | "/api/v1/workers/progress"
        | "/api/v1/workers/logs"
        | "/api/v1/workers/unregister"
            if post =>
        {
            Work
        }
        "/api/v1/tokens" if post => MintToken,
        "/api/v1/tokens" if get => Admin,
        "/api/v1/tokens/{token_id}" if delete => Admin,
        "/api/v1/audit" if get => Admin,
        "/api/v1/me" if get => Identity,
        _ => return None,
    })
}

impl Access {
    /// Whether a token of `role` (limited to one job or not) may call a
    /// route of this access at all; ownership is checked later, against
    /// the job.
    pub(crate) fn admits(self, role: Role, job_scoped: bool) -> bool {
        use Access::*;
        if job_scoped {
            return matches!(self, Public | FollowJob | Identity);
        }
        match self {
            Public => true,
            FollowJob | InspectJob | ListJobs | ReadQueue => {
                matches!(role, Role::Admin | Role::Viewer | Role::User)
            }
            Operate => matches!(role, Role::Admin | Role::Viewer),
            ChangeJobs => matches!(role, Role::Admin | Role::User),
            Work => matches!(role, Role::Admin | Role::Worker),
            MintToken | Identity => true,
            Admin => role == Role::Admin,
        }
    }
}
