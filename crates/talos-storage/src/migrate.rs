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

/// Revert the newest `steps` applied migrations (fewer when fewer are applied).
fn run_down<DB, C>(conn: &mut C, source: EmbeddedMigrations, steps: usize) -> Result<Vec<String>>
where
    DB: Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let migrations = MigrationSource::<DB>::migrations(&source).map_err(mig_err)?;
    let mut reverted = Vec::new();
    for _ in 0..steps {
        // Newest first, as diesel's `revert_last_migration` reads it.
        let applied = conn.applied_migrations().map_err(mig_err)?;
        let Some(last) = applied.first() else {
            break;
        };
        let m = migrations
            .iter()
            .find(|m| m.name().version() == *last)
            .ok_or_else(|| {
                mig_err(format!(
                    "applied migration {last} is not known to this build"
                ))
            })?;
        conn.revert_migration(&**m).map_err(mig_err)?;
        reverted.push(m.name().to_string());
    }
    Ok(reverted)
}

/// The version a `force` argument names: a migration's full name, its version with or without
/// dashes (`2026-11-23-000001`, `20261123000001`), or `0` for none.
fn forced_version(all: &[(String, String)], wanted: &str) -> Result<Option<String>> {
    let wanted = wanted.trim();
    if wanted == "0" {
        return Ok(None);
    }
    let bare = wanted.split('_').next().unwrap_or(wanted).replace('-', "");
    all.iter()
        .find(|(version, name)| *version == bare || name == wanted)
        .map(|(version, _)| Some(version.clone()))
        .ok_or_else(|| {
            let known: Vec<&str> = all.iter().map(|(_, n)| n.as_str()).collect();
            StorageError::Migration(format!(
                "unknown migration version {wanted:?} (known: {}, or 0 for none)",
                known.join(", ")
            ))
        })
}

/// Records exactly the migrations up to `version` as applied, running none of them: the way out
/// after a migration was applied or reverted by hand. Returns the names now recorded as applied.
fn run_force<DB, C>(conn: &mut C, source: EmbeddedMigrations, version: &str) -> Result<Vec<String>>
where
    DB: Backend,
    C: MigrationHarness<DB> + SimpleConnection,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let mut all = names::<DB>(&source)?;
    all.sort();
    let target = forced_version(&all, version)?;
    // Creates the bookkeeping table when missing.
    conn.applied_migrations().map_err(mig_err)?;
    let keep: Vec<&(String, String)> = all
        .iter()
        .filter(|(v, _)| target.as_ref().is_some_and(|t| v <= t))
        .collect();
    // Versions are the embedded migrations' own (digits only), never user text.
    let mut sql = match &target {
        Some(t) => format!("DELETE FROM __diesel_schema_migrations WHERE version > '{t}';"),
        None => "DELETE FROM __diesel_schema_migrations;".to_owned(),
    };
    for (v, _) in &keep {
        sql.push_str(&format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('{v}') ON CONFLICT DO NOTHING;"
        ));
    }
    conn.batch_execute(&sql).map_err(mig_err)?;
    Ok(keep.into_iter().map(|(_, n)| n.clone()).collect())
}

#[derive(Clone)]
enum Op {
    Up,
    DownAll,
    Down(usize),
    Force(String),
    Status,
}

enum Outcome {
    Names(Vec<String>),
    Status(Vec<MigrationStatus>),
}

fn run_op<DB, C>(conn: &mut C, source: EmbeddedMigrations, op: Op) -> Result<Outcome>
where
    DB: Backend,
    C: MigrationHarness<DB> + SimpleConnection,
    EmbeddedMigrations: MigrationSource<DB>,
{
    Ok(match op {
        Op::Up => Outcome::Names(run_up(conn, source)?),
        Op::DownAll => Outcome::Names(run_down_all(conn, source)?),
        Op::Down(steps) => Outcome::Names(run_down(conn, source, steps)?),
        Op::Force(version) => Outcome::Names(run_force(conn, source, &version)?),
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
            let analyze = matches!(op, Op::Up);
            let out = run_op(&mut conn, POSTGRES, op);
            if analyze && out.is_ok() {
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

/// Revert the newest `steps` applied migrations, newest first; returns the names reverted
/// (fewer than `steps` when fewer were applied).
pub async fn migrate_down(dsn: &str, steps: usize) -> Result<Vec<String>> {
    run(dsn, Op::Down(steps)).await.map(expect_names)
}

/// Record the migrations up to `version` as applied and the later ones as not, without running
/// any (`version` as [`migration_status`] names it, its version part with or without dashes, or
/// `0` for none). Returns the names now recorded as applied.
pub async fn migrate_force(dsn: &str, version: &str) -> Result<Vec<String>> {
    run(dsn, Op::Force(version.to_owned()))
        .await
        .map(expect_names)
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
