//! The audit log on SQLite (`sql/audit_log.sql`): appends in one write,
//! pages newest first by id, deletion by age (by id) in bounded batches.

use rusqlite::{Connection, named_params};

use super::ops::execute;
use super::rows::db_err;
use super::sql;
use crate::model::Millis;
use crate::model::audit::{Actor, AuditEntry, id_prefix_at};
use crate::store::{AuditPage, AuditQuery, StoreError, StoreResult};

/// Inserts `entries` (one already there is skipped). Runs inside one write.
pub(super) fn append_audit_in(conn: &Connection, entries: &[AuditEntry]) -> StoreResult<()> {
    let mut insert = conn.prepare_cached(sql::INSERT_AUDIT).map_err(db_err)?;
    for entry in entries {
        insert
            .execute(named_params! {
                ":id": entry.id.to_string(),
                ":at": entry.at,
                ":user_id": entry.actor.user_id,
                ":token_id": entry.actor.token_id,
                ":role": entry.actor.role,
                ":action": entry.action.as_str(),
                ":target": entry.target,
                ":remote_addr": entry.remote_addr,
                ":status": entry.status,
            })
            .map_err(db_err)?;
    }
    Ok(())
}

/// A page of entries, newest first.
pub(super) fn list_audit_in(conn: &Connection, query: &AuditQuery) -> StoreResult<AuditPage> {
    let mut stmt = conn.prepare_cached(sql::LIST_AUDIT).map_err(db_err)?;
    let mut rows = stmt
        .query(named_params! {
            ":user_id": query.user_id,
            ":action": query.action.map(|a| a.as_str()),
            ":target": query.target,
            ":before": query.before.map(|id| id.to_string()),
            ":limit": i64::try_from(query.limit).unwrap_or(i64::MAX),
        })
        .map_err(db_err)?;
    let corrupt = |e: String| StoreError::backend_corrupt("sqlite", e);
    let mut entries = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let id: String = row.get(0).map_err(db_err)?;
        let action: String = row.get(5).map_err(db_err)?;
        entries.push(AuditEntry {
            id: id
                .parse()
                .map_err(|e| corrupt(format!("audit id '{id}': {e}")))?,
            at: row.get(1).map_err(db_err)?,
            actor: Actor {
                user_id: row.get(2).map_err(db_err)?,
                token_id: row.get(3).map_err(db_err)?,
                role: row.get(4).map_err(db_err)?,
            },
            action: action.parse().map_err(corrupt)?,
            target: row.get(6).map_err(db_err)?,
            remote_addr: row.get(7).map_err(db_err)?,
            status: row.get(8).map_err(db_err)?,
        });
    }
    let next_cursor = (entries.len() == query.limit)
        .then(|| entries.last().map(|entry| entry.id))
        .flatten();
    Ok(AuditPage {
        entries,
        next_cursor,
    })
}

/// Deletes up to one batch of entries made before `before` (found by id,
/// which carries the time); how many.
pub(super) fn delete_expired_audit_in(conn: &Connection, before: Millis) -> StoreResult<usize> {
    execute(
        conn,
        sql::DELETE_EXPIRED_AUDIT,
        named_params! {":below": id_prefix_at(before)},
    )
}
