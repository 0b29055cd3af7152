//! Idempotency keys of submissions: read from the `Idempotency-Key`
//! header or the body's `idempotency_key`, and the fingerprint of the
//! request they came with (a SHA-256 of its JSON with keys sorted, so the
//! same request spelled differently is still the same).

use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::model::{IdempotencyKey, duration_millis};

/// The header that carries the key.
pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The header set on a response that answers a repeat with the job the
/// key's first submission stored.
pub(crate) const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// The submission's idempotency key, if it has one (header or body; both
/// must then agree), for `request` (the body, its key left out), held for
/// `ttl`.
pub(crate) fn idempotency_key(
    headers: &HeaderMap,
    in_body: Option<&str>,
    request: &impl Serialize,
    ttl: std::time::Duration,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let in_header = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| invalid())?),
    };
    let key = match (in_header, in_body) {
        (Some(header), Some(body)) if header != body => {
            return Err(ApiError::Validation(
                "the Idempotency-Key header and idempotency_key differ; give one".into(),
            ));
        }
        (Some(key), _) | (None, Some(key)) => key,
        (None, None) => return Ok(None),
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    let body = serde_json::to_value(request)
        .map_err(|e| ApiError::Internal(format!("cannot fingerprint the request: {e}")))?;
    Ok(Some(IdempotencyKey {
        key: key.to_owned(),
        fingerprint: fingerprint(&body),
        ttl_millis: duration_millis(ttl),
    }))
}

fn invalid() -> ApiError {
    ApiError::Validation(format!(
        "an idempotency key is 1 to {MAX_KEY_LEN} visible ASCII characters"
    ))
}

/// SHA-256 (hex) of `body` as JSON with every object's keys sorted.
fn fingerprint(body: &Value) -> String {
    let digest = Sha256::digest(sorted(body).to_string().as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `value` with every object's keys in order, whatever order the map keeps.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key.clone(), sorted(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_same_request_spelled_differently_has_one_fingerprint() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": 0}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a": {"x": 0, "y": [1, {"p": 3, "q": 2}]}, "b": 1}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&json!({"b": 2})));
    }

    #[test]
    fn keys_come_from_the_header_or_the_body_and_must_agree() {
        let ttl = std::time::Duration::from_secs(60);
        let mut headers = HeaderMap::new();
        let body = json!({"job_type": "noop"});
        assert_eq!(idempotency_key(&headers, None, &body, ttl).unwrap(), None);
        let from_body = idempotency_key(&headers, Some("k-1"), &body, ttl)
            .unwrap()
            .unwrap();
        assert_eq!(
            (from_body.key.as_str(), from_body.ttl_millis),
            ("k-1", 60_000)
        );
        headers.insert(IDEMPOTENCY_KEY_HEADER, "k-1".parse().unwrap());
        let both = idempotency_key(&headers, Some("k-1"), &body, ttl)
            .unwrap()
            .unwrap();
        assert_eq!(both, from_body);
        assert!(idempotency_key(&headers, Some("k-2"), &body, ttl).is_err());
        for bad in ["", "with space", &"x".repeat(256)] {
            assert!(
                idempotency_key(&HeaderMap::new(), Some(bad), &body, ttl).is_err(),
                "{bad:?}"
            );
        }
    }
}
