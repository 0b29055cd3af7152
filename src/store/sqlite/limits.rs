//! The claim's limits per job type on SQLite: the running counts per type
//! and per concurrency key, read once per claim from the running jobs
//! (they are few), and the open rate windows (`rate_windows`); from them
//! the types and keys a claim statement skips, kept up to date as the
//! claim takes jobs within its transaction.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{Connection, named_params};

use super::rows::db_err;
use super::sql;
use crate::model::{Job, Millis, duration_millis};
use crate::store::{ClaimLimits, StoreResult, key_scope};

/// What a claim under limits knows of the running jobs and the windows.
pub(super) struct Gate<'a> {
    limits: &'a ClaimLimits,
    now: Millis,
    type_running: HashMap<String, usize>,
    key_running: HashMap<String, usize>,
    /// Per rate scope, its open window's close and starts.
    windows: HashMap<String, (Millis, usize)>,
    /// The types and the key scopes at a limit now, as JSON arrays.
    blocked: (String, String),
}

impl<'a> Gate<'a> {
    /// Reads the running counts and the open rate windows (dropping closed
    /// ones) at `now`.
    pub(super) fn load(
        conn: &Connection,
        limits: &'a ClaimLimits,
        now: Millis,
    ) -> StoreResult<Gate<'a>> {
        let mut gate = Gate {
            limits,
            now,
            type_running: HashMap::new(),
            key_running: HashMap::new(),
            windows: HashMap::new(),
            blocked: (String::new(), String::new()),
        };
        let mut stmt = conn.prepare_cached(sql::RUNNING_BY_SCOPE).map_err(db_err)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (job_type, key, n) = row.map_err(db_err)?;
            let n = usize::try_from(n).unwrap_or(0);
            if let Some(key) = key {
                *gate
                    .key_running
                    .entry(key_scope(&job_type, &key))
                    .or_default() += n;
            }
            *gate.type_running.entry(job_type).or_default() += n;
        }
        conn.prepare_cached(sql::RATE_WINDOWS_PRUNE)
            .and_then(|mut stmt| stmt.execute(named_params! {":now": now}))
            .map_err(db_err)?;
        let mut stmt = conn
            .prepare_cached(sql::RATE_WINDOWS_OPEN)
            .map_err(db_err)?;
        let rows = stmt
            .query_map(named_params! {":now": now}, |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (scope, closes_at, started) = row.map_err(db_err)?;
            gate.windows
                .insert(scope, (closes_at, usize::try_from(started).unwrap_or(0)));
        }
        gate.block();
        Ok(gate)
    }

    /// The JSON arrays of types and of key scopes a claim skips.
    pub(super) fn blocked(&self) -> (&str, &str) {
        (&self.blocked.0, &self.blocked.1)
    }

    /// Counts a job the claim just started: its type, its key, its rate
    /// window.
    pub(super) fn started(&mut self, conn: &Connection, job: &Job) -> StoreResult<()> {
        let Some(limits) = self.limits.types.get(&job.job_type) else {
            return Ok(());
        };
        *self.type_running.entry(job.job_type.clone()).or_default() += 1;
        let key = job
            .concurrency_key
            .as_deref()
            .map(|key| key_scope(&job.job_type, key));
        if let Some(scope) = &key {
            *self.key_running.entry(scope.clone()).or_default() += 1;
        }
        if let Some(rate) = limits.rate {
            let scope = if rate.per_key {
                key.clone()
            } else {
                Some(job.job_type.clone())
            };
            if let Some(scope) = scope {
                let closes_at = self.now.saturating_add(duration_millis(rate.per).max(1));
                let window = self.windows.entry(scope.clone()).or_insert((closes_at, 0));
                window.1 += 1;
                conn.prepare_cached(sql::RATE_WINDOW_START)
                    .and_then(|mut stmt| {
                        stmt.execute(named_params! {":scope": scope, ":closes_at": window.0})
                    })
                    .map_err(db_err)?;
            }
        }
        self.block();
        Ok(())
    }

    /// Works out which types and keys are at a limit.
    fn block(&mut self) {
        let mut types = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (job_type, limits) in &self.limits.types {
            let running = self.type_running.get(job_type).copied().unwrap_or(0);
            if limits.type_max.is_some_and(|max| running >= max) {
                types.insert(job_type.as_str());
            }
            if let Some(rate) = limits.rate
                && !rate.per_key
                && self
                    .windows
                    .get(job_type)
                    .is_some_and(|(_, started)| *started >= rate.count)
            {
                types.insert(job_type.as_str());
            }
        }
        for (scope, running) in &self.key_running {
            if self
                .limits_of(scope)
                .and_then(|l| l.per_key_max)
                .is_some_and(|max| *running >= max)
            {
                keys.insert(scope.as_str());
            }
        }
        for (scope, (_, started)) in &self.windows {
            if self
                .limits_of(scope)
                .and_then(|l| l.rate)
                .is_some_and(|rate| rate.per_key && *started >= rate.count)
                && scope.contains(crate::store::limits::SCOPE_SEPARATOR)
            {
                keys.insert(scope.as_str());
            }
        }
        self.blocked = (json_array(&types), json_array(&keys));
    }

    /// The limits of the type a key scope belongs to.
    fn limits_of(&self, scope: &str) -> Option<&crate::store::TypeLimits> {
        let job_type = scope
            .split(crate::store::limits::SCOPE_SEPARATOR)
            .next()
            .unwrap_or(scope);
        self.limits.types.get(job_type)
    }
}

fn json_array(items: &BTreeSet<&str>) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// A rate scope's open window at `now`: its close and its starts.
pub(super) fn rate_window(
    conn: &Connection,
    scope: &str,
    now: Millis,
) -> StoreResult<Option<(Millis, u64)>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(sql::RATE_WINDOW)
        .and_then(|mut stmt| {
            stmt.query_row(named_params! {":scope": scope, ":now": now}, |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })
            .optional()
        })
        .map(|w| w.map(|(closes, started)| (closes, u64::try_from(started).unwrap_or(0))))
        .map_err(db_err)
}
