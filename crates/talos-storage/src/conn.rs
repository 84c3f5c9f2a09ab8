//! Pools, connection setup and error mapping: the only place diesel and deadpool errors are seen.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, ConnectionError, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::pooled_connection::{PoolError as ManagerError, PoolableConnection};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::dsn::{StoreOptions, Target};
use crate::error::{ConflictKind, Result, StorageError};
use crate::layer::{Detach, Layered};
use crate::ops::Database;
use crate::store::Store;

pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Map a diesel error: unique violations are duplicates, lost connections and a locked SQLite
/// database are `Unavailable` (transient, retryable), everything else `Internal`.
pub(crate) fn db_err(e: DieselError) -> StorageError {
    match e {
        DieselError::NotFound => StorageError::NotFound,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            StorageError::Conflict(ConflictKind::Duplicate)
        }
        DieselError::DatabaseError(
            kind @ (DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand),
            info,
        ) => StorageError::Unavailable(format!("{kind:?}: {}", info.message())),
        DieselError::DatabaseError(_, ref info) if is_transient_message(info.message()) => {
            StorageError::Unavailable(info.message().to_owned())
        }
        DieselError::BrokenTransactionManager => {
            StorageError::Unavailable("broken connection".into())
        }
        other => StorageError::Internal(other.to_string()),
    }
}

/// SQLITE_BUSY after the busy timeout, PostgreSQL's statement or lock timeout (a stalled
/// database), and PostgreSQL shutting down or refusing connections.
fn is_transient_message(msg: &str) -> bool {
    const TRANSIENT: &[&str] = &[
        "canceling statement due to statement timeout",
        "canceling statement due to lock timeout",
        "database is locked",
        "database table is locked",
        "terminating connection",
        "the database system is",
        "too many clients",
        "connection closed",
    ];
    TRANSIENT.iter().any(|t| msg.contains(t))
}

pub(crate) fn conn_err(e: ConnectionError) -> StorageError {
    match e {
        ConnectionError::InvalidConnectionUrl(msg) => StorageError::Config(msg),
        other => StorageError::Unavailable(other.to_string()),
    }
}

/// Every pool failure (timeout, refused connection, closed pool) means the database cannot be
/// reached right now.
pub(crate) fn pool_err(e: PoolError) -> StorageError {
    match e {
        PoolError::Backend(ManagerError::ConnectionError(e)) => conn_err(e),
        PoolError::Backend(ManagerError::QueryError(e)) => StorageError::Unavailable(e.to_string()),
        other => StorageError::Unavailable(format!("connection pool: {other}")),
    }
}

/// Checks out a connection, recording how long the wait took.
pub(crate) async fn checkout<C>(pool: &Pool<C>) -> Result<Object<C>>
where
    C: PoolableConnection + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = ManagerError>,
{
    let start = std::time::Instant::now();
    let conn = pool.get().await.map_err(pool_err);
    metrics::histogram!("talos_db_pool_wait_seconds").record(start.elapsed().as_secs_f64());
    conn
}

pub(crate) fn status_of<C>(pool: &Pool<C>) -> crate::store::PoolStatus
where
    C: PoolableConnection + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = ManagerError>,
{
    let s = pool.status();
    crate::store::PoolStatus {
        max_size: s.max_size,
        size: s.size,
        available: s.available,
        waiting: s.waiting,
    }
}

fn build_pool<C>(
    manager: AsyncDieselConnectionManager<C>,
    max_conns: usize,
    create_timeout: Duration,
    opts: &StoreOptions,
) -> Result<Pool<C>>
where
    C: PoolableConnection + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = ManagerError>,
{
    // Without these timeouts deadpool waits forever for a connection; the tokio runtime is what
    // lets it enforce them.
    Pool::builder(manager)
        .max_size(max_conns.max(1))
        .wait_timeout(Some(opts.pool_timeout))
        .create_timeout(Some(create_timeout))
        .recycle_timeout(Some(opts.pool_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StorageError::Config(format!("connection pool: {e}")))
}

/// `Fast` recycling skips the `SELECT 1` per checkout (it would double the round trips of every
/// lookup). Dead PostgreSQL connections are still dropped: `is_broken` checks the socket.
fn manager_config<C: AsyncConnection + 'static>() -> ManagerConfig<C> {
    let mut cfg = ManagerConfig::default();
    cfg.recycling_method = RecyclingMethod::Fast;
    cfg
}

/// How long SQLite waits for a lock: the pool timeout, but never longer than the statement timeout
/// (which bounds every statement's wait for a lock on PostgreSQL too).
fn sqlite_busy_timeout(opts: &StoreOptions) -> Duration {
    if opts.statement_timeout.is_zero() {
        opts.pool_timeout
    } else {
        opts.pool_timeout.min(opts.statement_timeout)
    }
}

/// Per-connection SQLite settings. busy_timeout comes first so the WAL switch itself waits for locks.
fn sqlite_pragmas(opts: &StoreOptions) -> String {
    let busy_ms = sqlite_busy_timeout(opts)
        .as_millis()
        .clamp(1, i32::MAX as u128);
    format!(
        "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
    )
}

/// Every new PostgreSQL connection gets `statement_timeout`: a statement stuck behind a lock (or a
/// runaway query) is cancelled by the server and fails as `Unavailable` instead of hanging a
/// request. Set per session rather than in the DSN's `options` so a DSN with its own `options`
/// keeps working.
fn pg_manager_config(opts: &StoreOptions) -> ManagerConfig<AsyncPgConnection> {
    let mut cfg = manager_config::<AsyncPgConnection>();
    let set = Arc::new(format!(
        "SET statement_timeout = {}",
        opts.statement_timeout.as_millis().min(i32::MAX as u128)
    ));
    cfg.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let set = Arc::clone(&set);
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.batch_execute(&set)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    cfg
}

pub(crate) struct PgStore {
    pub(crate) pool: Pool<AsyncPgConnection>,
}

pub(crate) struct SqliteStore {
    pub(crate) pool: Pool<SqliteConn>,
    /// For `sqlite::memory:`: an idle connection that keeps the shared in-memory database alive even
    /// if the pool drops and reopens its one connection (after a cancelled transaction, say).
    _anchor: Option<Mutex<SqliteConnection>>,
}

/// Open a store. Checks out one connection so a wrong or unreachable database fails here with
/// `Unavailable`. Does not migrate, except `sqlite::memory:` which starts empty and is migrated.
pub async fn connect(dsn: &str, opts: &StoreOptions) -> Result<Arc<dyn Store>> {
    match Target::parse(dsn)? {
        Target::Postgres {
            url,
            max_conns,
            has_connect_timeout,
        } => {
            let url = Target::postgres_url(&url, has_connect_timeout, opts.connect_timeout);
            let manager =
                AsyncDieselConnectionManager::new_with_config(url.clone(), pg_manager_config(opts));
            let store = PgStore {
                pool: build_pool(
                    manager,
                    max_conns.unwrap_or(opts.max_conns),
                    opts.connect_timeout,
                    opts,
                )?,
            };
            match store.conn().await {
                Ok(c) => drop(c),
                Err(e) => {
                    return Err(crate::diagnose::postgres(&url, opts.connect_timeout, e).await);
                }
            }
            Ok(Arc::new(store))
        }
        Target::SqliteFile { path } => {
            let store = SqliteStore {
                pool: sqlite_pool(path, opts.max_conns, opts)?,
                _anchor: None,
            };
            // The first connection switches the file to WAL before the pool opens others concurrently.
            drop(store.conn().await?);
            Ok(Arc::new(Layered::new(Arc::new(store), Detach)))
        }
        Target::SqliteMemory => {
            // A named shared-cache memory database, so the anchor and the pool see the same data.
            let uri = format!(
                "file:talos-mem-{}?mode=memory&cache=shared",
                uuid::Uuid::new_v4().simple()
            );
            let anchor_uri = uri.clone();
            let anchor = tokio::task::spawn_blocking(move || -> Result<SqliteConnection> {
                let mut conn = SqliteConnection::establish(&anchor_uri).map_err(conn_err)?;
                crate::migrate::run_up(&mut conn, crate::migrate::SQLITE)?;
                Ok(conn)
            })
            .await
            .map_err(|e| StorageError::Internal(format!("migration task: {e}")))??;
            // One connection: a shared-cache memory database uses table locks that busy_timeout
            // does not cover, so concurrent connections would fail with SQLITE_LOCKED.
            let store = SqliteStore {
                pool: sqlite_pool(uri, 1, opts)?,
                _anchor: Some(Mutex::new(anchor)),
            };
            drop(store.conn().await?);
            Ok(Arc::new(Layered::new(Arc::new(store), Detach)))
        }
    }
}

fn sqlite_pool(url: String, max_conns: usize, opts: &StoreOptions) -> Result<Pool<SqliteConn>> {
    let pragmas = Arc::new(sqlite_pragmas(opts));
    let mut cfg = manager_config::<SqliteConn>();
    cfg.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let pragmas = Arc::clone(&pragmas);
        Box::pin(async move {
            let mut conn = SqliteConn::establish(&url).await?;
            conn.batch_execute(&pragmas)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    // Opening runs the PRAGMAs, which may wait up to busy_timeout (<= pool_timeout) for a lock. The
    // create timeout must not fire first: dropping a SyncConnectionWrapper future mid-query blocks
    // the thread (or, on a current-thread runtime, panics); busy_timeout already bounds the wait.
    let create_timeout = opts.pool_timeout + opts.connect_timeout;
    build_pool(
        AsyncDieselConnectionManager::new_with_config(url, cfg),
        max_conns,
        create_timeout,
        opts,
    )
}
