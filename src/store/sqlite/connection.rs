//! Connections to the SQLite file: how each is opened (WAL, the busy
//! handler, cached plans) and the schema migrations. The read connections'
//! pool is [`super::readers`].

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::checkpoint::JOURNAL_SIZE_LIMIT;
use super::sql;
use crate::config::Synchronous;

/// Schema versions, applied in order to a file whose `user_version` is
/// below theirs.
const MIGRATIONS: [&str; 14] = [
    sql::SCHEMA,
    sql::DEPENDENCIES,
    sql::DROP_RUNNING_INDEXES,
    sql::RETIRED,
    sql::ROUTING,
    sql::JOB_LOGS,
    sql::TOKENS,
    sql::QUEUED_COUNTS,
    sql::AUDIT_LOG,
    sql::IDEMPOTENCY_KEYS,
    sql::DEBOUNCE_KEYS,
    sql::EXPIRY,
    sql::LIMITS,
    sql::SCHEDULES,
];

pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (version, migration) in (1i64..).zip(MIGRATIONS) {
        if version > current {
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", version)?;
        }
    }
    tx.commit()
}

/// Tries a connection makes for another process's write lock: about 5 s.
const LOCK_TRIES: u64 = 5_000;

/// Busy handler: retries every 100 µs, growing to 1 ms. SQLite's own waits
/// grow to 100 ms, so a process whose write queues behind another's busy
/// writer would answer in hundreds of milliseconds.
pub(super) fn wait_for_lock(attempt: i32) -> bool {
    let attempt = u64::try_from(attempt).unwrap_or(0);
    if attempt >= LOCK_TRIES {
        return false;
    }
    std::thread::sleep(Duration::from_micros(100 * (attempt + 1).min(10)));
    true
}

pub(super) fn open_connection(
    path: &Path,
    synchronous: Synchronous,
) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(wait_for_lock))?;
    // Before anything writes the file's header (setting WAL does): a new
    // file is made in incremental-vacuum mode, so that space freed by
    // retention can be given back (`space`). On an existing file this
    // changes nothing; one made without it converts in `space::convert`.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // Dependency resolution cascades through triggers (sql/dependencies.sql).
    conn.pragma_update(None, "recursive_triggers", "ON")?;
    // Savepoint journals in memory: the writer opens one per write, and a
    // temporary file each time would dominate a small write's cost.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Keep each statement's plan once prepared. Without this, binding new
    // values (a LIMIT, a value a partial index's condition mentions) makes
    // SQLite re-prepare the statement, triggers and all, which profiling
    // showed as 40% of the writer's time.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_version_2_file_loses_the_running_indexes_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.sqlite3");
        let mut conn = open_connection(&path, Synchronous::Normal).unwrap();
        // A file as version 2 left it: the first two migrations and the
        // two indexes the schema then had.
        conn.execute_batch(sql::SCHEMA).unwrap();
        conn.execute_batch(sql::DEPENDENCIES).unwrap();
        conn.execute_batch(
            "CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'running';
             CREATE INDEX jobs_running_worker ON jobs (worker_id) WHERE status = 'running';
             INSERT INTO jobs (id, job_type, user_id, status, parameters, created_at, queued_at, updated_at)
                 VALUES ('j1', 'noop', 'u1', 'pending', '{}', 1, 1, 1);
             PRAGMA user_version = 2;",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let names = indexes(&conn);
        assert!(
            !names.iter().any(|name| name.starts_with("jobs_running")),
            "{names:?}"
        );
        assert!(names.contains(&"jobs_by_status".to_owned()), "{names:?}");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(
            version,
            MIGRATIONS.len() as i64,
            "every later migration ran"
        );
        let jobs: i64 = conn
            .query_row("SELECT count(*) FROM jobs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(jobs, 1);
    }

    #[test]
    fn a_version_4_file_keeps_its_jobs_built_in_and_their_queue_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.sqlite3");
        let mut conn = open_connection(&path, Synchronous::Normal).unwrap();
        let before_routing = &MIGRATIONS[..4];
        for migration in before_routing {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO jobs (id, job_type, user_id, status, parameters, created_at, queued_at, updated_at)
                 VALUES ('j1', 'extraction', 'u1', 'pending', '{}', 1, 1, 1);
             PRAGMA user_version = 4;",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let remote: i64 = conn
            .query_row("SELECT remote FROM jobs WHERE id = 'j1'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(remote, 0, "an existing job is built-in");
        let pending: i64 = conn
            .query_row(
                "SELECT pending FROM queue_users WHERE user_id = 'u1'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(pending, 1, "its user's queue still counts it");
        let names = indexes(&conn);
        assert!(
            names.contains(&"jobs_pending_builtin".to_owned()),
            "{names:?}"
        );
        assert!(
            !names.contains(&"jobs_pending_by_user".to_owned()),
            "{names:?}"
        );

        // Its claim goes by the new triggers: the user's count drops.
        conn.execute(
            "UPDATE jobs SET status = 'running', claim_token = 't' WHERE id = 'j1'",
            [],
        )
        .unwrap();
        let (pending, running): (i64, i64) = conn
            .query_row(
                "SELECT pending, running FROM queue_users WHERE user_id = 'u1'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((pending, running), (0, 1));
    }

    #[test]
    fn a_version_6_file_counts_its_queued_jobs_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobd.sqlite3");
        let mut conn = open_connection(&path, Synchronous::Normal).unwrap();
        for migration in &MIGRATIONS[..6] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO jobs (id, job_type, user_id, status, parameters, created_at, queued_at, updated_at)
                 VALUES ('j1', 'noop', 'u1', 'pending', '{}', 1, 1, 1),
                        ('j2', 'noop', 'u1', 'scheduled', '{}', 1, 1, 1),
                        ('j3', 'noop', 'u1', 'failed', '{}', 1, 1, 1),
                        ('j4', 'noop', 'u2', 'scheduled', '{}', 1, 1, 1);
             PRAGMA user_version = 6;",
        )
        .unwrap();

        migrate(&mut conn).unwrap();

        let queued = |user: &str| -> i64 {
            conn.query_row(sql::QUEUED_OF_USER, [user], |row| row.get(0))
                .unwrap()
        };
        assert_eq!((queued("u1"), queued("u2"), queued("u3")), (2, 1, 0));
        // From now on the triggers keep it: a claim and a restart.
        conn.execute(
            "UPDATE jobs SET status = 'running', claim_token = 't' WHERE id = 'j1'",
            [],
        )
        .unwrap();
        conn.execute("UPDATE jobs SET status = 'pending' WHERE id = 'j3'", [])
            .unwrap();
        assert_eq!(queued("u1"), 2);
        conn.execute("DELETE FROM jobs WHERE id = 'j2'", [])
            .unwrap();
        assert_eq!(queued("u1"), 1);
    }

    /// The steps a statement's plan takes, as `EXPLAIN QUERY PLAN` words
    /// them (every parameter bound to 0).
    fn plan(conn: &Connection, statement: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
            .unwrap();
        for i in 1..=stmt.parameter_count() {
            stmt.raw_bind_parameter(i, 0).unwrap();
        }
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get(3).unwrap());
        }
        steps
    }

    #[test]
    fn due_jobs_are_found_by_the_due_time_index_not_by_status() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn =
            open_connection(&dir.path().join("jobd.sqlite3"), Synchronous::Normal).unwrap();
        migrate(&mut conn).unwrap();
        for statement in [sql::PROMOTE_DUE, sql::NEXT_DUE] {
            let steps = plan(&conn, statement);
            assert!(
                steps.iter().any(|s| s.contains("jobs_scheduled_due")),
                "{steps:?}"
            );
            assert!(
                !steps.iter().any(|s| s.contains("jobs_by_status")),
                "{steps:?}"
            );
        }
    }
}
