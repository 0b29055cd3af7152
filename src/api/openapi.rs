//! The one list of routes. Every route the server answers is registered
//! here through utoipa-axum, from the `#[utoipa::path]` annotation of its
//! handler, so the router and the OpenAPI document are built from the same
//! source and cannot disagree. Also serves the document
//! (`/api/v1/openapi.json`) and Swagger UI (`/api/docs`, embedded, offline).

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::Method;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::Config;

use super::auth::policy::{Access, access};
use super::error::{ApiError, ErrorBody};
use super::extract::ApiPath;
use super::remote::{exchange, logs as worker_logs, progress, register};
use super::state::AppState;
use super::{
    artifacts, audit_page, batch, dashboard, head, jobs, live, logs, metrics, pipeline, schedules,
    stats, throughput, tokens, watch, why,
};
use crate::config::AuthMode;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/api/docs";

/// The document's header: title, description and tags. Paths and schemas
/// are added by [`routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobd",
        description = "A background-job service: submit jobs, watch them (long-poll or \
            Server-Sent Events), cancel and restart them, and read the queue's state. Every \
            error has the shape `Error`. Every timestamp is UTC RFC 3339 ending in `Z`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    tags(
        (name = "jobs", description = "Submit, read, list, cancel and restart jobs"),
        (name = "watch", description = "Wait for a job's changes"),
        (name = "queue", description = "The queue's state: statistics, throughput, workers"),
        (name = "workers", description = "The HTTP worker protocol: remote workers register, \
            claim and finish jobs of the remote job types (docs/worker-protocol.md)"),
        (name = "schedules", description = "Jobs submitted on a cron schedule: one per tick \
            across every server"),
        (name = "tokens", description = "API tokens (with `auth = \"token\"`): make, list, revoke"),
        (name = "operations", description = "Health, metrics and this document"),
        (name = "audit", description = "The audit log: who changed what, when, from where"),
        (name = "dashboard", description = "The operators' web pages"),
    )
)]
struct ApiDoc;

/// Every route with its handler, documented. The server's router is this
/// list plus fallbacks and layers, nothing else.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jobs::submit, jobs::list))
        .routes(routes!(pipeline::submit_pipeline))
        .routes(routes!(batch::submit_batch))
        .routes(routes!(jobs::status))
        .routes(routes!(watch::poll))
        .routes(routes!(watch::stream))
        .routes(routes!(why::why))
        .routes(routes!(artifacts::list_artifacts))
        .routes(routes!(artifacts::download_artifact))
        .routes(routes!(logs::log_page))
        .routes(routes!(logs::log_stream))
        .routes(routes!(stats::queue_stats))
        .routes(routes!(live::queue_stream))
        .routes(routes!(throughput::throughput))
        .routes(routes!(stats::workers))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::restart))
        .routes(routes!(register::register))
        .routes(routes!(exchange::exchange))
        .routes(routes!(progress::progress))
        .routes(routes!(worker_logs::append_logs))
        .routes(routes!(register::unregister))
        .routes(routes!(
            schedules::list_schedules,
            schedules::create_schedule
        ))
        .routes(routes!(schedules::get_schedule, schedules::delete_schedule))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(tokens::me))
        .routes(routes!(audit_page::list_audit))
        .routes(routes!(stats::health_check))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(docs_index))
        .routes(routes!(docs_file))
        .routes(routes!(dashboard::index))
        .routes(routes!(dashboard::file))
}

/// The OpenAPI document of [`routes`] as a server with `auth = "none"`
/// serves it, with the version of this build.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi_for(AuthMode::None)
}

/// The document as a server with `auth` serves it: with `token`, every
/// route that is not public needs the bearer scheme and may answer 401 and
/// 403; with `none`, no route asks for a token.
pub fn openapi_for(auth: AuthMode) -> utoipa::openapi::OpenApi {
    let mut doc = routes().into_openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    add_common_answers(&mut doc, auth == AuthMode::Token);
    doc
}

/// Adds to every operation the answers any request can get for its head
/// (`head::check_head`): 414 `UriTooLongError`, 431 `HeadersTooLargeError`;
/// 403 `ForbiddenError` (`guard`: a `Host` not answered to, a browser's
/// mutation from another origin; with tokens, a role not allowed); and, if
/// `guarded_routes`, to every route that is not public (`auth::policy`),
/// the bearer scheme and 401 `UnauthorizedError`.
fn add_common_answers(doc: &mut utoipa::openapi::OpenApi, guarded_routes: bool) {
    let error = |description: &str| {
        let body = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build();
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content("application/json", body)
                .build(),
        )
    };
    let limits = [
        (
            "403",
            error(
                "`ForbiddenError`: a `Host` this server does not answer to (`allowed_hosts`), \
                 a browser's POST, PUT, PATCH or DELETE from an origin not allowed \
                 (`allowed_origins`), or (with `auth = \"token\"`) a token whose role does \
                 not allow this",
            ),
        ),
        (
            "414",
            error(&format!(
                "`UriTooLongError`: the URI is over {} bytes",
                head::MAX_URI_BYTES
            )),
        ),
        (
            "431",
            error(&format!(
                "`HeadersTooLargeError`: over {} header fields, or a head over {} bytes",
                head::MAX_HEADER_FIELDS,
                head::MAX_HEAD_BYTES
            )),
        ),
    ];
    let guarded = [(
        "401",
        error("`UnauthorizedError`: with `auth = \"token\"`, no valid bearer token"),
    )];
    let bearer = SecurityRequirement::new(BEARER, Vec::<String>::new());
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::OPTIONS, &mut item.options),
            (Method::HEAD, &mut item.head),
            (Method::PATCH, &mut item.patch),
            (Method::TRACE, &mut item.trace),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let answers = &mut operation.responses.responses;
            for (status, response) in &limits {
                answers.insert((*status).to_owned(), response.clone());
            }
            if guarded_routes && access(&method, path) != Some(Access::Public) {
                for (status, response) in &guarded {
                    answers
                        .entry((*status).to_owned())
                        .or_insert_with(|| response.clone());
                }
                operation.security = Some(vec![bearer.clone()]);
            }
        }
    }
    if !guarded_routes {
        return;
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A token from `POST /api/v1/tokens` (or `JOBD_ADMIN_TOKEN`), with \
                     `auth = \"token\"`; with `auth = \"none\"` none is needed",
                ))
                .build(),
        ),
    );
}

/// The name of the bearer security scheme in the document.
const BEARER: &str = "bearer";

/// The document as JSON, rendered once per process.
fn openapi_text(auth: AuthMode) -> &'static str {
    static OPEN: OnceLock<String> = OnceLock::new();
    static GUARDED: OnceLock<String> = OnceLock::new();
    let text = match auth {
        AuthMode::None => &OPEN,
        AuthMode::Token => &GUARDED,
    };
    text.get_or_init(|| {
        openapi_for(auth)
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the document: {e}\"}}"))
    })
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    summary = "This OpenAPI document",
    responses((status = 200, description = "OpenAPI 3.1 document of every route", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi_text(state.settings.auth),
    )
        .into_response()
}

/// `GET /api/docs`: to Swagger UI's page, whose assets are relative to it.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "operations",
    summary = "Interactive API documentation",
    responses((status = 303, description = "To `/api/docs/index.html`",
        headers(("Location" = String, description = "`/api/docs/index.html`"))))
)]
pub async fn docs_index() -> Redirect {
    Redirect::to("/api/docs/index.html")
}

fn swagger_config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(
                Config::new([OPENAPI_PATH])
                    // No badge that would ask a validator on the internet.
                    .validator_url("none")
                    .try_it_out_enabled(true)
                    .display_request_duration(true),
            )
        })
        .clone()
}

/// `GET /api/docs/{file}`: Swagger UI, embedded in the binary.
#[utoipa::path(
    get,
    path = "/api/docs/{file}",
    tag = "operations",
    summary = "A file of the interactive API documentation",
    params(("file" = String, Path, description = "e.g. `index.html`")),
    responses(
        (status = 200, description = "The file; its type by its name", content(
            (String = "text/html"),
            (String = "text/css"),
            (String = "text/javascript"),
            (String = "image/png"),
        )),
        (status = 400, description = "`ValidationError`: the name is not UTF-8", body = ErrorBody),
        (status = 404, description = "`NotFoundError`: no such file", body = ErrorBody),
    )
)]
pub(crate) async fn docs_file(ApiPath(file): ApiPath<String>) -> Response {
    match utoipa_swagger_ui::serve(&file, swagger_config()) {
        Ok(Some(found)) => {
            let content_type = HeaderValue::from_str(&found.content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                found.bytes.into_owned(),
            )
                .into_response();
            if found.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => ApiError::NoRoute(format!("GET {DOCS_PATH}/{file}")).into_response(),
        Err(e) => {
            tracing::error!(error = %e, file, "swagger ui");
            ApiError::NoRoute(format!("GET {DOCS_PATH}/{file}")).into_response()
        }
    }
}
