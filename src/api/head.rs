//! Limits on a request's head, answered in the error shape: a URI longer
//! than [`MAX_URI_BYTES`] is a 414 `UriTooLongError`; more than
//! [`MAX_HEADER_FIELDS`] header fields, or a head (request line and
//! header fields) over [`MAX_HEAD_BYTES`], a 431 `HeadersTooLargeError`.
//!
//! hyper parses the head first and answers what it cannot take with an
//! empty body of its own, before any of our code runs (it has no hook for
//! that answer). `listen` therefore sets hyper's own limits well above
//! these, so a request over them reaches this check and gets the API's
//! error shape; hyper's bare answers are left for heads beyond its limits
//! (and for bytes that are not HTTP/1 at all).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Longest request target (path and query, or an absolute URI), in bytes.
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;

/// Most header fields in a request (hyper's own default limit, kept).
pub(crate) const MAX_HEADER_FIELDS: usize = 100;

/// Largest head, in bytes: the request line and the header fields with
/// their separators and line ends, as sent.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Middleware: refuses a request whose head is over the limits above.
pub(crate) async fn check_head(request: Request, next: Next) -> Response {
    match over_limits(&request) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

/// The error for a head over the limits, if it is.
fn over_limits(request: &Request) -> Option<ApiError> {
    let uri = uri_len(request.uri());
    if uri > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong {
            length: uri,
            limit: MAX_URI_BYTES,
        });
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADER_FIELDS {
        return Some(ApiError::HeadersTooLarge(format!(
            "The request has {} header fields; the limit is {MAX_HEADER_FIELDS}",
            headers.len()
        )));
    }
    // "METHOD URI HTTP/1.1\r\n", each "name: value\r\n", the final "\r\n".
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let head = request.method().as_str().len() + uri + 11 + fields + 2;
    (head > MAX_HEAD_BYTES).then(|| {
        ApiError::HeadersTooLarge(format!(
            "The request head is {head} bytes; the limit is {MAX_HEAD_BYTES} bytes"
        ))
    })
}

/// The length of the request target as sent: path and query, plus
/// scheme and authority for an absolute URI.
fn uri_len(uri: &axum::http::Uri) -> usize {
    let path = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    scheme + authority + path
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;

    use super::*;

    fn request(uri: &str, headers: &[(String, String)]) -> Request {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder.body(Body::empty()).expect("request")
    }

    fn status(error: Option<ApiError>) -> Option<StatusCode> {
        error.map(|e| e.status_code())
    }

    #[test]
    fn heads_within_the_limits_pass_and_others_are_refused() {
        let path = |n: usize| format!("/api/v1/jobs?user_id={}", "a".repeat(n - 21));
        assert_eq!(
            uri_len(&path(MAX_URI_BYTES).parse().unwrap()),
            MAX_URI_BYTES
        );
        assert!(over_limits(&request(&path(MAX_URI_BYTES), &[])).is_none());
        assert_eq!(
            status(over_limits(&request(&path(MAX_URI_BYTES + 1), &[]))),
            Some(StatusCode::URI_TOO_LONG)
        );
        let fields = |n: usize| -> Vec<(String, String)> {
            (0..n).map(|i| (format!("x-h{i}"), "v".into())).collect()
        };
        assert!(over_limits(&request("/health", &fields(MAX_HEADER_FIELDS))).is_none());
        assert_eq!(
            status(over_limits(&request(
                "/health",
                &fields(MAX_HEADER_FIELDS + 1)
            ))),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let big = |n: usize| vec![("x-big".to_owned(), "a".repeat(n))];
        assert!(over_limits(&request("/health", &big(MAX_HEAD_BYTES / 2))).is_none());
        assert_eq!(
            status(over_limits(&request("/health", &big(MAX_HEAD_BYTES)))),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }
}
