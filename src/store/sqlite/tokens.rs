//! API tokens on SQLite (`sql/tokens.sql`): one row per token, the secret
//! kept only as its hash.

use rusqlite::{Connection, OptionalExtension, Row, named_params};

use super::rows::db_err;
use super::sql;
use crate::model::{ApiToken, Millis};
use crate::store::{StoreError, StoreResult};

/// Inserts `token`.
pub(super) fn insert_token_in(conn: &Connection, token: &ApiToken) -> StoreResult<()> {
    conn.prepare_cached(sql::INSERT_TOKEN)
        .and_then(|mut stmt| {
            stmt.execute(named_params! {
                ":id": token.id,
                ":secret_hash": token.secret_hash,
                ":user_id": token.user_id,
                ":role": token.role.as_str(),
                ":job_id": token.job_id.map(|id| id.to_string()),
                ":created_at": token.created_at,
                ":expires_at": token.expires_at,
            })
        })
        .map_err(db_err)?;
    Ok(())
}

/// The token `id`, if stored.
pub(super) fn select_token_in(conn: &Connection, id: &str) -> StoreResult<Option<ApiToken>> {
    let row = conn
        .prepare_cached(sql::SELECT_TOKEN)
        .and_then(|mut stmt| {
            stmt.query_row(named_params! {":id": id}, raw_token)
                .optional()
        })
        .map_err(db_err)?;
    row.map(decode).transpose()
}

/// Every token, newest first.
pub(super) fn select_tokens_in(conn: &Connection) -> StoreResult<Vec<ApiToken>> {
    let mut stmt = conn.prepare_cached(sql::SELECT_TOKENS).map_err(db_err)?;
    let rows = stmt
        .query_map([], raw_token)
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_err)?;
    rows.into_iter().map(decode).collect()
}

/// Revokes the token `id` at `now` unless it already was; the token after.
pub(super) fn revoke_token_in(
    conn: &Connection,
    id: &str,
    now: Millis,
) -> StoreResult<Option<ApiToken>> {
    conn.prepare_cached(sql::REVOKE_TOKEN)
        .and_then(|mut stmt| stmt.execute(named_params! {":id": id, ":now": now}))
        .map_err(db_err)?;
    select_token_in(conn, id)
}

/// Deletes the tokens that stopped working (expired or revoked) before
/// `before`; how many.
pub(super) fn delete_ended_tokens_in(conn: &Connection, before: Millis) -> StoreResult<usize> {
    conn.prepare_cached(sql::DELETE_ENDED_TOKENS)
        .and_then(|mut stmt| stmt.execute(named_params! {":before": before}))
        .map_err(db_err)
}

/// A row's columns, undecoded.
type RawToken = (
    String,
    String,
    String,
    String,
    Option<String>,
    Millis,
    Option<Millis>,
    Option<Millis>,
);

fn raw_token(row: &Row<'_>) -> rusqlite::Result<RawToken> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn decode(raw: RawToken) -> StoreResult<ApiToken> {
    let (id, secret_hash, user_id, role, job_id, created_at, expires_at, revoked_at) = raw;
    let corrupt = |e: String| StoreError::backend_corrupt("sqlite", e);
    Ok(ApiToken {
        role: role
            .parse()
            .map_err(|e: crate::model::UnknownRole| corrupt(e.to_string()))?,
        job_id: job_id
            .map(|id| id.parse())
            .transpose()
            .map_err(|e: uuid::Error| corrupt(e.to_string()))?,
        id,
        secret_hash,
        user_id,
        created_at,
        expires_at,
        revoked_at,
    })
}
