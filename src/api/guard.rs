//! What a browser may do with the API, checked before any route runs:
//!
//! - **Host** (DNS rebinding): a page of `evil.example` whose name is made
//!   to resolve to 127.0.0.1 reaches a loopback server as the same origin,
//!   but its requests carry `Host: evil.example`. A server bound to a
//!   loopback address answers only to loopback names (`localhost`,
//!   `*.localhost`, `127.0.0.0/8`, `[::1]`) and `allowed_hosts`; one bound
//!   elsewhere answers to any host unless `allowed_hosts` is set.
//! - **Origin** (cross-site requests): request bodies are read as JSON
//!   whatever their type, so a form or a `text/plain` fetch of any page
//!   could submit or cancel jobs. A mutating request (POST, PUT, PATCH,
//!   DELETE) that says it comes from a page (`Origin`, `Sec-Fetch-Site`)
//!   must come from the server's own origin or an allowed one. A request
//!   that says neither (curl, the CLI, SDKs) is not a browser's: it passes.
//! - **CORS**, off unless `cors_allowed_origins` lists the origin: only
//!   then does tower-http's [`CorsLayer`] see the request, so no other
//!   origin ever gets a CORS header, preflight or not.
//! - **Security headers** on every answer, pages and API alike: a
//!   Content-Security-Policy without inline script, `nosniff`, no referrer,
//!   no framing.
//!
//! Refusals are 403 `ForbiddenError`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use crate::config::{Settings, normalise_origin};

/// The Content-Security-Policy of every answer: scripts and styles from
/// the server itself only (the dashboard and Swagger UI have no inline
/// script), images also as `data:` URLs (Swagger UI's icons), no plugins,
/// no `<base>`, never in a frame, forms posting only here. The one inline
/// style allowed, by its hash, is the `<style>` of Swagger UI's logo
/// (`.logo_small_svg__cls-2{fill:#fff}...`); a Swagger UI whose logo
/// differs loses the logo's colours, nothing else (the browser test
/// reports the violation).
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
    form-action 'self'";

/// The headers set on every answer (unless a handler set them itself).
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// How long a browser may cache a CORS preflight's answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// The checks of one server, from its settings.
#[derive(Clone)]
pub(crate) struct Guard {
    hosts: Hosts,
    /// Origins allowed to mutate besides the server's own: `allowed_origins`
    /// and `cors_allowed_origins`, normalised.
    origins: Vec<String>,
    /// Origins CORS is open to, normalised; empty: CORS is off.
    cors_origins: Vec<String>,
    cors: Option<CorsLayer>,
}

/// The `Host` names answered.
#[derive(Clone, Debug)]
enum Hosts {
    /// Any.
    Any,
    /// Loopback names and these (exact, or `*.domain` for its subdomains).
    Listed(Vec<String>),
}

impl Guard {
    /// The checks `settings` ask for.
    pub(crate) fn from_settings(settings: &Settings) -> Guard {
        let hosts = match &settings.allowed_hosts {
            Some(names) if names.iter().any(|n| n == "*") => Hosts::Any,
            Some(names) => Hosts::Listed(names.clone()),
            None if settings.bind.ip().is_loopback() => Hosts::Listed(Vec::new()),
            None => Hosts::Any,
        };
        let mut origins = settings.allowed_origins.clone();
        origins.extend(settings.cors_allowed_origins.iter().cloned());
        let cors_origins = settings.cors_allowed_origins.clone();
        let cors = (!cors_origins.is_empty()).then(|| {
            let allowed: Vec<HeaderValue> = cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect();
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(allowed))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([header::LOCATION, header::RETRY_AFTER])
                .max_age(CORS_MAX_AGE)
        });
        Guard {
            hosts,
            origins,
            cors_origins,
            cors,
        }
    }

    /// Refuses a request whose `Host` this server does not answer to, or a
    /// browser's mutation from another origin.
    fn check(&self, request: &Request) -> Result<(), ApiError> {
        let headers = request.headers();
        let host = headers.get(header::HOST);
        if let Some(host) = host {
            self.check_host(&String::from_utf8_lossy(host.as_bytes()))?;
        }
        // An absolute-form target (`POST http://name/ HTTP/1.1`) names a
        // host too.
        if let Some(authority) = request.uri().authority() {
            self.check_host(authority.as_str())?;
        }
        if is_mutation(request.method()) {
            self.check_origin(headers, host)?;
        }
        Ok(())
    }

    fn check_host(&self, host: &str) -> Result<(), ApiError> {
        let Hosts::Listed(names) = &self.hosts else {
            return Ok(());
        };
        let name = host_name(host);
        let allowed = name.as_deref().is_some_and(|name| {
            is_loopback_name(name)
                || names
                    .iter()
                    .any(|allowed| match allowed.strip_prefix("*.") {
                        Some(domain) => name
                            .strip_suffix(domain)
                            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                        None => allowed == name,
                    })
        });
        if allowed {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "This server does not answer to the host {host:?} (a loopback-bound server answers \
             to loopback names only, unless allowed_hosts lists it)"
        )))
    }

    fn check_origin(
        &self,
        headers: &HeaderMap,
        host: Option<&HeaderValue>,
    ) -> Result<(), ApiError> {
        let site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let Some(origin) = headers.get(header::ORIGIN) else {
            return match site.as_deref() {
                Some("cross-site" | "same-site") => Err(ApiError::Forbidden(
                    "A cross-site request may not change jobs (Sec-Fetch-Site)".to_owned(),
                )),
                _ => Ok(()),
            };
        };
        let origin = origin.to_str().ok().and_then(normalise_origin);
        let refused = || {
            ApiError::Forbidden(
                "A page of another origin may not change jobs; allowed_origins lists the \
                 origins that may"
                    .to_owned(),
            )
        };
        let Some(origin) = origin else {
            // `null` (a sandboxed frame, a file, a redirect), or not an origin.
            return Err(refused());
        };
        if self.origins.contains(&origin) {
            return Ok(());
        }
        if site.as_deref() == Some("cross-site") {
            return Err(refused());
        }
        let same = host
            .and_then(|h| h.to_str().ok())
            .and_then(|h| origin.split_once("://").map(|(scheme, _)| (scheme, h)))
            .and_then(|(scheme, h)| normalise_origin(&format!("{scheme}://{h}")))
            .is_some_and(|own| own == origin);
        if same { Ok(()) } else { Err(refused()) }
    }

    /// The CORS layer, when the request's origin is one CORS is open to.
    fn cors_for(&self, request: &Request) -> Option<&CorsLayer> {
        let cors = self.cors.as_ref()?;
        let origin = request.headers().get(header::ORIGIN)?.to_str().ok()?;
        let origin = normalise_origin(origin)?;
        self.cors_origins.contains(&origin).then_some(cors)
    }
}

/// Whether `method` changes something (what a cross-site page must not do).
fn is_mutation(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The host name of a `Host` value, lower case, without its port or a
/// trailing dot; IPv6 addresses keep their brackets. `None` if malformed.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        (&host[..=end], &host[end + 1..])
    } else {
        match host.split_once(':') {
            Some((name, _)) => (name, &host[name.len()..]),
            None => (host.as_str(), ""),
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok());
    let name = name.strip_suffix('.').unwrap_or(name);
    (port_ok && !name.is_empty()).then(|| name.to_owned())
}

/// Whether `name` (from [`host_name`]) can only mean this machine.
fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let ip = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => name.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    };
    ip.is_some_and(|ip| ip.is_loopback())
}

/// Middleware: refuses what [`Guard`] refuses, lets CORS answer for the
/// origins it is open to, and adds the security headers to every answer.
pub(crate) async fn guard(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let cors_configured = guard.cors.is_some();
    let mut response = match guard.check(&request) {
        Err(refused) => refused.into_response(),
        Ok(()) => match guard.cors_for(&request) {
            Some(cors) => match cors.layer(next).oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => {
                let mut response = next.run(request).await;
                if cors_configured {
                    // The answer depends on the origin: no cache may give
                    // this one to an origin CORS is open to.
                    response
                        .headers_mut()
                        .append(header::VARY, HeaderValue::from_static("origin"));
                }
                response
            }
        },
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_port_case_and_trailing_dot() {
        assert_eq!(host_name("LocalHost:8000").as_deref(), Some("localhost"));
        assert_eq!(host_name("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(host_name("example.com.").as_deref(), Some("example.com"));
        assert_eq!(host_name("example.com:x"), None);
        assert_eq!(host_name("[::1"), None);
        assert_eq!(host_name(":80"), None);
    }

    #[test]
    fn loopback_names() {
        for name in [
            "localhost",
            "app.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
        ] {
            assert!(is_loopback_name(name), "{name}");
        }
        for name in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "[::2]",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_name(name), "{name}");
        }
    }
}
