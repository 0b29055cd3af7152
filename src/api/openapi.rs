//! The one list of routes. Every route the server answers is registered
//! here through utoipa-axum, from the `#[utoipa::path]` annotation of its
//! handler, so the router and the OpenAPI document are built from the same
//! source and cannot disagree. Also serves the document
//! (`/api/v1/openapi.json`) and Swagger UI (`/api/docs`, embedded, offline).

use std::sync::{Arc, OnceLock};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::Config;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiPath;
use super::remote::{exchange, logs as worker_logs, progress, register};
use super::state::AppState;
use super::{
    audit_page, dashboard, head, jobs, live, logs, metrics, pipeline, stats, throughput, watch, why,
};

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
        .routes(routes!(jobs::status))
        .routes(routes!(watch::poll))
        .routes(routes!(watch::stream))
        .routes(routes!(why::why))
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
        .routes(routes!(audit_page::list_audit))
        .routes(routes!(stats::health_check))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(docs_index))
        .routes(routes!(docs_file))
        .routes(routes!(dashboard::index))
        .routes(routes!(dashboard::file))
}

/// The OpenAPI document of [`routes`], with the version of this build.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().into_openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    add_head_limits(&mut doc);
    doc
}

/// Adds to every operation the answers any request can get for its head
/// (`head::check_head`): 414 `UriTooLongError`, 431 `HeadersTooLargeError`.
fn add_head_limits(doc: &mut utoipa::openapi::OpenApi) {
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
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in &limits {
                operation
                    .responses
                    .responses
                    .insert((*status).to_owned(), response.clone());
            }
        }
    }
}

/// The document as JSON, rendered once per process.
fn openapi_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        openapi()
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
pub async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi_text(),
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
