//! API tokens on Redis: a hash per token (`token:<id>`, the secret kept
//! only as its hash) and the `tokens` index by creation time.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Value};

use super::bounded;
use super::keys::Keys;
use crate::model::{ApiToken, Millis};
use crate::store::{StoreError, StoreResult};

/// Stores `token` and indexes it, in one transaction.
pub(super) async fn create(
    mut conn: ConnectionManager,
    keys: &Keys,
    token: &ApiToken,
) -> StoreResult<()> {
    let mut fields = vec![
        ("secret_hash", token.secret_hash.clone()),
        ("user_id", token.user_id.clone()),
        ("role", token.role.as_str().to_owned()),
        ("created_at", token.created_at.to_string()),
    ];
    if let Some(job_id) = token.job_id {
        fields.push(("job_id", job_id.to_string()));
    }
    if let Some(at) = token.expires_at {
        fields.push(("expires_at", at.to_string()));
    }
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hset_multiple(keys.token(&token.id), &fields)
        .ignore()
        .zadd(keys.named("tokens"), &token.id, token.created_at)
        .ignore();
    if let Some(at) = token.expires_at {
        pipe.zadd(keys.named("tokens_ending"), &token.id, at)
            .ignore();
    }
    bounded(pipe.query_async::<()>(&mut conn)).await
}

/// The token `id`, if stored.
pub(super) async fn get(
    mut conn: ConnectionManager,
    keys: &Keys,
    id: &str,
) -> StoreResult<Option<ApiToken>> {
    let fields: HashMap<String, String> = bounded(conn.hgetall(keys.token(id))).await?;
    decode(id, fields)
}

/// Every token, newest first.
pub(super) async fn list(mut conn: ConnectionManager, keys: &Keys) -> StoreResult<Vec<ApiToken>> {
    let ids: Vec<String> = bounded(conn.zrevrange(keys.named("tokens"), 0, -1)).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hgetall(keys.token(id));
    }
    let all: Vec<HashMap<String, String>> = bounded(pipe.query_async(&mut conn)).await?;
    let mut tokens = Vec::with_capacity(ids.len());
    for (id, fields) in ids.iter().zip(all) {
        tokens.extend(decode(id, fields)?);
    }
    Ok(tokens)
}

/// Decodes the reply of `revoke_token.lua`: the token's fields, or nil.
pub(super) fn revoked(id: &str, reply: Value) -> StoreResult<Option<ApiToken>> {
    if reply == Value::Nil {
        return Ok(None);
    }
    let fields: HashMap<String, String> =
        redis::from_redis_value(reply).map_err(|e| StoreError::backend_corrupt("redis", e))?;
    decode(id, fields)
}

/// A token from its hash's fields; `None` for no fields (no such key).
fn decode(id: &str, mut fields: HashMap<String, String>) -> StoreResult<Option<ApiToken>> {
    if fields.is_empty() {
        return Ok(None);
    }
    let corrupt = |what: &str| StoreError::backend_corrupt("redis", format!("token {id}: {what}"));
    let mut take = |name: &str| fields.remove(name);
    let millis = |text: Option<String>, name: &str| -> StoreResult<Option<Millis>> {
        text.map(|t| t.parse().map_err(|_| corrupt(name)))
            .transpose()
    };
    let secret_hash = take("secret_hash").ok_or_else(|| corrupt("no secret_hash"))?;
    let user_id = take("user_id").ok_or_else(|| corrupt("no user_id"))?;
    let role = take("role")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| corrupt("bad role"))?;
    let job_id = take("job_id")
        .map(|j| j.parse().map_err(|_| corrupt("bad job_id")))
        .transpose()?;
    let created_at =
        millis(take("created_at"), "created_at")?.ok_or_else(|| corrupt("no created_at"))?;
    let expires_at = millis(take("expires_at"), "expires_at")?;
    let revoked_at = millis(take("revoked_at"), "revoked_at")?;
    Ok(Some(ApiToken {
        id: id.to_owned(),
        secret_hash,
        user_id,
        role,
        job_id,
        created_at,
        expires_at,
        revoked_at,
    }))
}
