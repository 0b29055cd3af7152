//! Request tracing without secrets. A browser's `EventSource` cannot send
//! an `Authorization` header, so a token may arrive in the query string
//! (`access_token`); tower-http's default span would log the whole URI. The
//! span here logs the method, the version and the URI with such parameters'
//! values replaced by `REDACTED`, and never a header.

use axum::http::{Request, Uri};
use tracing::Span;

/// Query parameters whose values are secrets (after percent-decoding the
/// name, as the extractors read it).
const SECRET_PARAMETERS: [&str; 2] = ["access_token", "token"];

/// The span of one request, for `TraceLayer::make_span_with`.
pub(crate) fn request_span<B>(request: &Request<B>) -> Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %redacted_uri(request.uri()),
        version = ?request.version(),
    )
}

/// `uri` as it may be logged: path and query, each secret parameter's
/// value `REDACTED`.
pub(crate) fn redacted_uri(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let secret = |name: &str| SECRET_PARAMETERS.contains(&name);
    let has_secret = form_urlencoded::parse(query.as_bytes()).any(|(name, _)| secret(&name));
    if !has_secret {
        return format!("{path}?{query}");
    }
    let mut redacted = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = if secret(&name) {
            "REDACTED".into()
        } else {
            value
        };
        redacted.append_pair(&name, &value);
    }
    format!("{path}?{}", redacted.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(uri: &str) -> String {
        redacted_uri(&uri.parse().expect("uri"))
    }

    #[test]
    fn secret_parameters_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redacted("/s?after=3&access_token=s3cret&x=1"),
            "/s?after=3&access_token=REDACTED&x=1"
        );
        // However the name is spelled, as long as it decodes to one.
        assert_eq!(
            redacted("/s?access%5Ftoken=s3cret&token=t"),
            "/s?access_token=REDACTED&token=REDACTED"
        );
        assert_eq!(redacted("/s?after=3"), "/s?after=3");
        assert_eq!(redacted("/s"), "/s");
    }
}
