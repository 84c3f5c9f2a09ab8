//! Embedded migrations, run on a blocking thread with a synchronous connection.
//!
//! `AsyncMigrationHarness` is not used: it calls `block_in_place`, which panics on a current-thread
//! runtime (`#[actix_web::main]`, default `#[tokio::test]`). A blocking thread works on any runtime.

use diesel::backend::Backend;
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{Connection, SqliteConnection};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::conn::conn_err;
use crate::dsn::{StoreOptions, Target};
use crate::error::{Result, StorageError};

pub(crate) const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
pub(crate) const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Statistics for the planner after migrations and bulk imports: on a fresh table (or with
/// autovacuum off) no statistics exist, and the hot queries are written so that the plan does not
/// depend on them, but the rest of the workload (listing, counting) plans better with them.
pub(crate) const PG_ANALYZE: &str = "ANALYZE api_keys; ANALYZE cache_invalidations;";

/// Serialises concurrent `migrate up` runs (several nodes starting at once) on PostgreSQL.
/// An arbitrary constant: the bytes of "talosmig".
const PG_ADVISORY_LOCK: i64 = 0x7461_6c6f_736d_6967;

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub name: String,
    pub applied: bool,
}

fn mig_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Migration(e.to_string())
}

fn names<DB: Backend>(source: &EmbeddedMigrations) -> Result<Vec<(String, String)>>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    let migrations = MigrationSource::<DB>::migrations(source).map_err(mig_err)?;
    Ok(migrations
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect())
}

/// Apply pending migrations; returns the names applied now.
pub(crate) fn run_up<DB, C>(conn: &mut C, source: EmbeddedMigrations) -> Result<Vec<String>>
where
    DB: Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let pending = conn.pending_migrations(source).map_err(mig_err)?;
    let applied = pending.iter().map(|m| m.name().to_string()).collect();
    conn.run_migrations(&pending).map_err(mig_err)?;
    Ok(applied)
}

fn run_down_all<DB, C>(conn: &mut C, source: EmbeddedMigrations) -> Result<Vec<String>>
where
    DB: Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let all = names::<DB>(&source)?;
    let reverted = conn.revert_all_migrations(source).map_err(mig_err)?;
    let reverted: Vec<String> = reverted.iter().map(|v| v.to_string()).collect();
    Ok(all
        .into_iter()
        .rev()
        .filter(|(v, _)| reverted.contains(v))
        .map(|(_, n)| n)
        .collect())
}

fn run_status<DB, C>(conn: &mut C, source: EmbeddedMigrations) -> Result<Vec<MigrationStatus>>
where
    DB: Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(mig_err)?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    let mut all = names::<DB>(&source)?;
    all.sort();
    Ok(all
        .into_iter()
        .map(|(v, name)| MigrationStatus {
            applied: applied.contains(&v),
            name,
        })
        .collect())
}

#[derive(Clone, Copy)]
enum Op {
    Up,
    DownAll,
    Status,
}

enum Outcome {
    Names(Vec<String>),
    Status(Vec<MigrationStatus>),
}

fn run_op<DB, C>(conn: &mut C, source: EmbeddedMigrations, op: Op) -> Result<Outcome>
where
    DB: Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    Ok(match op {
        Op::Up => Outcome::Names(run_up(conn, source)?),
        Op::DownAll => Outcome::Names(run_down_all(conn, source)?),
        Op::Status => Outcome::Status(run_status(conn, source)?),
    })
}

async fn run(dsn: &str, op: Op) -> Result<Outcome> {
    let target = Target::parse(dsn)?;
    let connect_timeout = StoreOptions::default().connect_timeout;
    let pg_url = match &target {
        Target::Postgres { url, .. } => Some(url.clone()),
        _ => None,
    };
    let out = tokio::task::spawn_blocking(move || match target {
        Target::Postgres {
            url,
            has_connect_timeout,
            ..
        } => {
            let url = Target::postgres_url(&url, has_connect_timeout, connect_timeout);
            // Fully qualified: with both Connection traits in scope `establish` is ambiguous.
            let mut conn =
                <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)
                    .map_err(conn_err)?;
            conn.batch_execute(&format!("SELECT pg_advisory_lock({PG_ADVISORY_LOCK})"))
                .map_err(mig_err)?;
            let out = run_op(&mut conn, POSTGRES, op);
            if matches!((&out, op), (Ok(_), Op::Up)) {
                conn.batch_execute(PG_ANALYZE).map_err(mig_err)?;
            }
            // Best effort: closing the connection releases the lock anyway.
            let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({PG_ADVISORY_LOCK})"));
            out
        }
        Target::SqliteFile { path } => {
            let mut conn = SqliteConnection::establish(&path).map_err(conn_err)?;
            // Wait for a running server's writes instead of failing with "database is locked".
            conn.batch_execute("PRAGMA busy_timeout = 5000;")
                .map_err(mig_err)?;
            run_op(&mut conn, SQLITE, op)
        }
        Target::SqliteMemory => {
            // A fresh, private database: only useful to check the migrations themselves.
            let mut conn = SqliteConnection::establish(":memory:").map_err(conn_err)?;
            run_op(&mut conn, SQLITE, op)
        }
    })
    .await
    .map_err(|e| StorageError::Internal(format!("migration task: {e}")))?;
    match (out, pg_url) {
        (Err(e), Some(url)) => Err(crate::diagnose::postgres(&url, connect_timeout, e).await),
        (out, _) => out,
    }
}

fn expect_names(o: Outcome) -> Vec<String> {
    match o {
        Outcome::Names(n) => n,
        Outcome::Status(s) => s.into_iter().map(|m| m.name).collect(),
    }
}

/// Apply every pending migration; returns the names applied by this call (empty when up to date).
/// Never creates a PostgreSQL database (a missing one is `Unavailable`). A missing SQLite file is
/// created, as SQLite does on open.
pub async fn migrate_up(dsn: &str) -> Result<Vec<String>> {
    run(dsn, Op::Up).await.map(expect_names)
}

/// Revert every applied migration, newest first; returns the names reverted.
pub async fn migrate_down_all(dsn: &str) -> Result<Vec<String>> {
    run(dsn, Op::DownAll).await.map(expect_names)
}

/// Every known migration, oldest first, with whether it is applied.
pub async fn migration_status(dsn: &str) -> Result<Vec<MigrationStatus>> {
    match run(dsn, Op::Status).await? {
        Outcome::Status(s) => Ok(s),
        Outcome::Names(_) => Err(StorageError::Internal(
            "unexpected migration outcome".into(),
        )),
    }
}

/// Names of migrations not yet applied, oldest first.
pub async fn pending_migrations(dsn: &str) -> Result<Vec<String>> {
    let status = migration_status(dsn).await?;
    Ok(status
        .into_iter()
        .filter(|m| !m.applied)
        .map(|m| m.name)
        .collect())
}
