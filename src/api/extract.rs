//! Extractors whose rejections come out in the API's error shape: a job id
//! path segment, other path segments, query strings, JSON bodies, and the
//! rules of a user id.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::IntoParams;

use super::error::ApiError;
use super::state::AppState;
use crate::model::JobId;

/// The `{job_id}` path segment, which must be a UUID (400 otherwise).
pub(crate) struct JobIdPath(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::Validation(e.body_text()))?;
        raw.parse()
            .map(JobIdPath)
            .map_err(|_| ApiError::InvalidJobId(raw))
    }
}

/// The OpenAPI description of the `{job_id}` path parameter that
/// [`JobIdPath`] reads; never built.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct JobIdParam {
    /// The job's id, a UUID (anything else is a 400 `InvalidJobIdError`).
    job_id: uuid::Uuid,
}

/// A path segment, with a 400 in our shape when it does not decode (say,
/// percent-encoded bytes that are not UTF-8).
pub(crate) struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|e| ApiError::Validation(e.body_text()))
    }
}

/// A query string, with a 400 in our shape when it does not parse.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| ApiError::Validation(format!("invalid query string: {}", e.body_text())))
    }
}

/// A JSON object body, whatever the Content-Type says (so `curl -d`
/// works); an empty body or a bare `null` is `None`. Malformed JSON, or
/// JSON that is not an object (an array would otherwise be read by
/// position), is a 400; an oversized body a 413, at once when its
/// `Content-Length` says so.
pub(crate) struct JsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // A body announced over the limit is refused at once, not after
        // waiting for bytes that will be refused anyway.
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let limit = state.settings.max_body_bytes;
        if announced.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(state.settings.max_body_bytes)
            } else if timed_out(&e) {
                ApiError::RequestTimeout
            } else {
                ApiError::Validation(format!("cannot read request body: {}", e.body_text()))
            }
        })?;
        let invalid =
            |e: serde_json::Error| ApiError::Validation(format!("invalid JSON body: {e}"));
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => Ok(JsonBody(None)),
            // An object: read by name, and a field of the wrong type is
            // named by its path (`jobs[1].priority`), so a batch's bad entry
            // says which it is. (serde would also read an array into a
            // struct, by position, so anything else is settled below.)
            Some(b'{') => {
                let mut reader = serde_json::Deserializer::from_slice(&bytes);
                let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
                    let path = e.path().to_string();
                    match path.as_str() {
                        "." => invalid(e.into_inner()),
                        _ => ApiError::Validation(format!(
                            "invalid JSON body at {path}: {}",
                            e.into_inner()
                        )),
                    }
                })?;
                reader.end().map_err(invalid)?;
                Ok(JsonBody(Some(value)))
            }
            Some(_) => match serde_json::from_slice::<Value>(&bytes).map_err(invalid)? {
                Value::Null => Ok(JsonBody(None)),
                other => Err(ApiError::Validation(format!(
                    "the body must be a JSON object, not {}",
                    json_kind(&other)
                ))),
            },
        }
    }
}

/// What a JSON value is, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// True when reading the body failed because it took longer than the
/// read time-out (see `api::with_layers`).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Largest page of a listing (jobs, audit entries).
pub(crate) const MAX_PAGE: usize = 1000;

/// A listing's `limit` (1 to [`MAX_PAGE`], 50 if absent) and `cursor`
/// (the previous page's `next_cursor`: the id, a UUID, of the `item` it
/// stopped at), or the 400 that says what is wrong.
pub(crate) fn page_params(
    limit: Option<usize>,
    cursor: Option<String>,
    item: &str,
) -> Result<(usize, Option<uuid::Uuid>), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let cursor = cursor
        .map(|c| {
            c.parse().map_err(|_| {
                ApiError::Validation(format!(
                    "invalid cursor '{c}': give the next_cursor of the previous page ({item} id)"
                ))
            })
        })
        .transpose()?;
    Ok((limit, cursor))
}

/// Longest accepted user id, in characters (not bytes).
pub(crate) const MAX_USER_ID_CHARS: usize = 128;

/// Invisible characters refused in a user id, besides the control
/// characters (`char::is_control`: U+0000–U+001F, U+007F–U+009F): every
/// format character (Unicode general category Cf, as of Unicode 15: soft
/// hyphen, Arabic and Syriac marks, zero-width space and joiners, the
/// left-to-right and right-to-left marks, the bidirectional embeddings,
/// overrides and isolates, word joiner and invisible operators, the byte
/// order mark, interlinear annotations, tags ...), the line and paragraph
/// separators, and the other default-ignorable code points that render as
/// nothing (combining grapheme joiner, Hangul fillers, Khmer inherent
/// vowels, Mongolian and other variation selectors). Each would make two
/// users look alike in the dashboard, the metrics and the limits.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{2028}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// True for a character a user id may not hold: see [`INVISIBLE`].
fn invisible(c: char) -> bool {
    c.is_control()
        || INVISIBLE
            .iter()
            .any(|&(low, high)| (low..=high).contains(&c))
}

/// Checks a user id, wherever it comes in (`what` names where, for the
/// message): 1 to [`MAX_USER_ID_CHARS`] characters, not only whitespace,
/// and no control, format or other invisible character ([`INVISIBLE`]).
pub(crate) fn check_user_id(what: &str, id: &str) -> Result<(), ApiError> {
    let chars = id.chars().count();
    if !(1..=MAX_USER_ID_CHARS).contains(&chars) {
        return Err(ApiError::Validation(format!(
            "{what} must be 1 to {MAX_USER_ID_CHARS} characters long, not {chars}"
        )));
    }
    if id.chars().all(char::is_whitespace) {
        return Err(ApiError::Validation(format!(
            "{what} must not be only whitespace"
        )));
    }
    if let Some((at, c)) = id.chars().enumerate().find(|&(_, c)| invisible(c)) {
        return Err(ApiError::Validation(format!(
            "{what} must not contain control, format or invisible characters \
             (U+{:04X} at character {})",
            u32::from(c),
            at + 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_counted_in_characters_and_must_be_visible() {
        assert!(check_user_id("user_id", "alice").is_ok());
        assert!(check_user_id("user_id", "José Müller").is_ok());
        assert!(check_user_id("user_id", "東京").is_ok());
        assert!(check_user_id("user_id", &"é".repeat(MAX_USER_ID_CHARS)).is_ok());
        assert!(check_user_id("user_id", &"é".repeat(MAX_USER_ID_CHARS + 1)).is_err());
        assert!(check_user_id("user_id", "").is_err());
        assert!(check_user_id("user_id", " \u{3000}\t").is_err());
        for c in [
            '\u{0}',
            '\n',
            '\u{7F}',
            '\u{85}',
            '\u{AD}',
            '\u{200B}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{2028}',
            '\u{202A}',
            '\u{202E}',
            '\u{2060}',
            '\u{2066}',
            '\u{2069}',
            '\u{FEFF}',
            '\u{3164}',
            '\u{FE0F}',
            '\u{E0041}',
        ] {
            let id = format!("ali{c}ce");
            assert!(check_user_id("user_id", &id).is_err(), "{id:?} accepted");
        }
        // Neighbours of the refused ranges are ordinary characters.
        for c in ['\u{2027}', '\u{202F}', '\u{2070}', '\u{FEFE}', '\u{FFFC}'] {
            let id = format!("ali{c}ce");
            assert!(check_user_id("user_id", &id).is_ok(), "{id:?} refused");
        }
    }
}
