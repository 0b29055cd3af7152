//! The operators' dashboard: plain HTML, CSS and JavaScript embedded in the
//! binary (no build step, nothing fetched from elsewhere), served at `/`
//! with its assets under `/dashboard/`. The page talks to the public API
//! only: the live queue stream, the job list, a job's SSE stream, cancel,
//! restart, the workers and the "why pending" hint. With `auth = "token"`
//! it asks for a token and sends it as `Authorization: Bearer` on every
//! call, streams included (read with `fetch`, not `EventSource`, so that no
//! token travels in a URL); the files themselves are public.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorBody};
use super::extract::ApiPath;

/// The page.
const INDEX_HTML: &str = include_str!("dashboard/index.html");

/// Its assets: name, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("dashboard/favicon.svg"),
    ),
];

/// The name of a dashboard asset.
// The names of `ASSETS` for the document (a test keeps them equal); never built.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) enum DashboardAsset {
    /// The script.
    #[schema(rename = "app.js")]
    AppJs,
    /// The style sheet.
    #[schema(rename = "style.css")]
    StyleCss,
    /// The icon.
    #[schema(rename = "favicon.svg")]
    FaviconSvg,
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidate every time: the binary may have been upgraded.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "dashboard",
    tag = "dashboard",
    summary = "The dashboard (HTML)",
    responses((status = 200, description = "The dashboard page (`charset=utf-8`)", content_type = "text/html", body = String))
)]
pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /dashboard/{file}`: the dashboard's script, style sheet and icon.
#[utoipa::path(
    get,
    path = "/dashboard/{file}",
    operation_id = "dashboard_asset",
    tag = "dashboard",
    summary = "A dashboard asset",
    params(("file" = inline(DashboardAsset), Path, description = "`app.js`, `style.css` or `favicon.svg`")),
    responses(
        (status = 200, description = "The asset; its type by its name (`charset=utf-8` on the text ones)", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "image/svg+xml"),
        )),
        (status = 400, description = "`ValidationError`: the name is not UTF-8", body = ErrorBody),
        (status = 404, description = "`NotFoundError`: no such asset", body = ErrorBody),
    )
)]
pub(crate) async fn file(ApiPath(name): ApiPath<String>) -> Response {
    match ASSETS.iter().find(|(asset_name, _, _)| *asset_name == name) {
        Some((_, content_type, body)) => asset(content_type, body),
        None => ApiError::NoRoute(format!("GET /dashboard/{name}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_names_are_the_assets() {
        let schema = serde_json::to_value(<DashboardAsset as utoipa::PartialSchema>::schema())
            .expect("schema");
        let names: Vec<&str> = ASSETS.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(schema["enum"], serde_json::json!(names));
    }

    #[test]
    fn the_page_references_only_embedded_assets() {
        for reference in INDEX_HTML.split("/dashboard/").skip(1) {
            let name: String = reference
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "index.html references /dashboard/{name}, which is not embedded"
            );
        }
        for (_, _, body) in ASSETS.iter().chain([&("index", "", INDEX_HTML)]) {
            // The SVG namespace is a name, not a download.
            let body = body.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "dashboard assets must not load anything from elsewhere"
            );
        }
    }
}
