//! The audit log on Redis: one sorted set, `audit`, every member at score
//! 0 so that it sorts by its text, `<id>\t<entry as JSON>`. Ids are UUID v7
//! whose text sorts by time, so the set is in time order: an append is one
//! `ZADD`, a page one `ZREVRANGEBYLEX` from the cursor down (or a few, when
//! filters skip entries), and retention a `ZREMRANGEBYLEX` below the text
//! every id made at the cut-off or later starts with. No script is needed:
//! each step is one command, and none reads before it writes.

use crate::model::Millis;
use crate::model::audit::{AuditEntry, id_prefix_at};
use crate::store::{AuditPage, AuditQuery, StoreResult};

use super::{RedisStore, bounded, decode};

/// Entries read per `ZREVRANGEBYLEX` of a listing.
const SCAN_CHUNK: usize = 500;

/// Entries a listing call reads at most: with filters that match little,
/// the page ends there, short, with a cursor to go on from.
const MAX_SCAN: usize = 10_000;

/// Entries deleted per retention command.
const DELETE_BATCH: usize = 1_000;

/// The set's member for `entry`.
fn member(entry: &AuditEntry) -> StoreResult<String> {
    let json = serde_json::to_string(entry).map_err(decode::corrupt)?;
    Ok(format!("{}\t{json}", entry.id))
}

/// The entry a member holds.
fn entry_of(member: &str) -> StoreResult<AuditEntry> {
    let (_, json) = member
        .split_once('\t')
        .ok_or_else(|| decode::corrupt(format!("audit member {member:?}")))?;
    serde_json::from_str(json).map_err(|e| decode::corrupt(format!("audit entry: {e}")))
}

fn matches(query: &AuditQuery, entry: &AuditEntry) -> bool {
    query
        .user_id
        .as_ref()
        .is_none_or(|user| entry.actor.user_id.as_ref() == Some(user))
        && query.action.is_none_or(|action| entry.action == action)
        && query
            .target
            .as_ref()
            .is_none_or(|target| entry.target.as_ref() == Some(target))
}

impl RedisStore {
    /// `ZADD` of every entry, in one command.
    pub(super) async fn append_audit_entries(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.named("audit"));
        for entry in entries {
            cmd.arg(0).arg(member(entry)?);
        }
        bounded(cmd.query_async::<()>(&mut self.conn())).await
    }

    /// A page newest first, filtered here.
    pub(super) async fn audit_page(&self, query: &AuditQuery) -> StoreResult<AuditPage> {
        let key = self.keys.named("audit");
        let mut below = query.before.map(|id| id.to_string());
        let mut entries = Vec::new();
        let mut scanned = 0;
        loop {
            let max = below
                .as_ref()
                .map_or_else(|| "+".to_owned(), |id| format!("({id}"));
            let chunk: Vec<String> = bounded(
                redis::cmd("ZREVRANGEBYLEX")
                    .arg(&key)
                    .arg(max)
                    .arg("-")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(SCAN_CHUNK)
                    .query_async(&mut self.conn()),
            )
            .await?;
            for member in &chunk {
                let entry = entry_of(member)?;
                scanned += 1;
                below = Some(entry.id.to_string());
                if matches(query, &entry) {
                    entries.push(entry);
                    if entries.len() >= query.limit {
                        let next_cursor = entries.last().map(|e| e.id);
                        return Ok(AuditPage {
                            entries,
                            next_cursor,
                        });
                    }
                }
            }
            if chunk.len() < SCAN_CHUNK {
                return Ok(AuditPage {
                    entries,
                    next_cursor: None,
                });
            }
            if scanned >= MAX_SCAN {
                // Short, but not the end: go on below the last entry read.
                let next_cursor = below.as_deref().and_then(|id| id.parse().ok());
                return Ok(AuditPage {
                    entries,
                    next_cursor,
                });
            }
        }
    }

    /// Deletes the entries made before `before`, a batch per command; how
    /// many.
    pub(super) async fn delete_expired_audit(&self, before: Millis) -> StoreResult<usize> {
        let key = self.keys.named("audit");
        let below = format!("({}", id_prefix_at(before));
        let mut deleted = 0;
        loop {
            // The batch's last member, if the batch is full.
            let last: Vec<String> = bounded(
                redis::cmd("ZRANGEBYLEX")
                    .arg(&key)
                    .arg("-")
                    .arg(&below)
                    .arg("LIMIT")
                    .arg(DELETE_BATCH - 1)
                    .arg(1)
                    .query_async(&mut self.conn()),
            )
            .await?;
            let upto = match last.first() {
                Some(member) => format!("[{member}"),
                None => below.clone(),
            };
            let removed: usize = bounded(
                redis::cmd("ZREMRANGEBYLEX")
                    .arg(&key)
                    .arg("-")
                    .arg(upto)
                    .query_async(&mut self.conn()),
            )
            .await?;
            deleted += removed;
            if last.is_empty() {
                return Ok(deleted);
            }
        }
    }
}
