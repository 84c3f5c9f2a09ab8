//! Test databases and fixtures. Every test gets its own database: a temp SQLite file, or a fresh
//! PostgreSQL database `talos_test_<random>` created through `TALOS_TEST_DATABASE_URL` (the admin
//! URL) and dropped when the test ends, even if it panicked. So tests run in parallel.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Map, Value, json};
use talos_storage::*;
use uuid::Uuid;

pub const PG_ENV: &str = "TALOS_TEST_DATABASE_URL";

pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub dsn: String,
    /// Dropped after `store` (fields drop in order), so the pool is gone before the database.
    _cleanup: Cleanup,
}

/// Held only for its `Drop`.
#[allow(dead_code)]
enum Cleanup {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

pub fn opts() -> StoreOptions {
    StoreOptions {
        max_conns: 8,
        ..StoreOptions::default()
    }
}

/// A migrated SQLite file in a fresh temp directory.
pub async fn sqlite() -> TestDb {
    let (dir, dsn) = sqlite_dsn();
    migrate_up(&dsn).await.expect("migrate sqlite");
    let store = connect(&dsn, &opts()).await.expect("connect sqlite");
    TestDb {
        store,
        dsn,
        _cleanup: Cleanup::Sqlite(dir),
    }
}

/// An unmigrated SQLite DSN in a fresh temp directory (the directory lives as long as the guard).
pub fn sqlite_dsn() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dsn = format!("sqlite://{}", dir.path().join("talos.db").display());
    (dir, dsn)
}

/// The shared in-memory database (migrated on connect).
pub async fn sqlite_memory() -> TestDb {
    let dsn = "sqlite::memory:".to_owned();
    let store = connect(&dsn, &opts())
        .await
        .expect("connect sqlite::memory:");
    let dir = tempfile::tempdir().expect("tempdir");
    TestDb {
        store,
        dsn,
        _cleanup: Cleanup::Sqlite(dir),
    }
}

/// A migrated, freshly created PostgreSQL database; `None` (with a note) when the env var is unset.
pub async fn postgres() -> Option<TestDb> {
    let db = PgDatabase::create().await?;
    migrate_up(&db.dsn).await.expect("migrate postgres");
    let store = connect(&db.dsn, &opts()).await.expect("connect postgres");
    Some(TestDb {
        store,
        dsn: db.dsn.clone(),
        _cleanup: Cleanup::Postgres(db),
    })
}

pub fn admin_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("note: {PG_ENV} is not set; skipping the PostgreSQL leg of this test");
            None
        }
    }
}

/// A database created for one test and dropped (best effort, `WITH (FORCE)`) on drop.
pub struct PgDatabase {
    admin: String,
    pub name: String,
    pub dsn: String,
}

impl PgDatabase {
    pub async fn create() -> Option<PgDatabase> {
        let admin = admin_url()?;
        let name = format!("talos_test_{}", Uuid::new_v4().simple());
        let mut conn = AsyncPgConnection::establish(&admin)
            .await
            .expect("connect to the admin database");
        // template0: nobody is ever connected to it, so parallel CREATE DATABASE never collides.
        conn.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .await
            .expect("create database");
        let dsn = with_database(&admin, &name);
        Some(PgDatabase { admin, name, dsn })
    }

    /// Drop now (the store's connections are terminated by FORCE).
    pub async fn drop_now(admin: &str, name: &str) {
        if let Ok(mut conn) = AsyncPgConnection::establish(admin).await {
            let _ = conn
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: use a thread with its own runtime.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(PgDatabase::drop_now(&admin, &name));
            }
        })
        .join();
    }
}

/// The admin URL with its database name replaced (query string kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{db}{query}", &base[..authority_end])
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Now, truncated to what storage keeps (microseconds), so round trips compare equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

pub fn nid() -> Uuid {
    Uuid::new_v4()
}

pub fn uuid_id() -> String {
    Uuid::new_v4().to_string()
}

/// A 64-hex imported key id derived from `n`.
pub fn hex_id(n: u32) -> String {
    format!("{:064x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15)
}

/// A distinct 32-byte hash for `n`.
pub fn hash(n: u32) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&n.to_be_bytes());
    h[31] = 0xa5;
    h
}

fn metadata() -> Map<String, Value> {
    match json!({"team": "payments", "tier": 3, "nested": {"a": [1, 2]}}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// An issued key with every optional field set.
pub fn issued(nid: Uuid, key_id: &str) -> KeyRecord {
    let t = now();
    KeyRecord {
        nid,
        kind: KeyKind::Issued,
        key_id: key_id.to_owned(),
        name: "ci key".into(),
        actor_id: "actor-1".into(),
        scopes: vec!["read".into(), "write".into()],
        metadata: metadata(),
        status: StoredStatus::Active,
        visibility: Visibility::Secret,
        create_time: t,
        update_time: t,
        expire_time: Some(t + hours(24)),
        last_used_time: None,
        rate_limit_policy: Some(RateLimitPolicy {
            quota: 100,
            window_secs: 60,
        }),
        allowed_cidrs: Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]),
        revocation_reason: None,
        revocation_description: None,
        request_id: None,
        imported: None,
        credits: None,
        actor_has_quota: None,
    }
}

/// `k` as the verification lookups (`get_key`, `find_imported_by_hashes`) read it: knowing
/// whether its actor has a balance quota (these fixtures' actors have none).
pub fn looked_up(k: &KeyRecord) -> KeyRecord {
    KeyRecord {
        actor_has_quota: Some(false),
        ..k.clone()
    }
}

/// An imported key with hash `hash(n)` and secret `s1`.
pub fn imported(nid: Uuid, n: u32) -> KeyRecord {
    KeyRecord {
        kind: KeyKind::Imported,
        key_id: hex_id(n),
        expire_time: None,
        rate_limit_policy: None,
        allowed_cidrs: None,
        visibility: Visibility::Unspecified,
        imported: Some(ImportedHash {
            hash: hash(n),
            secret_id: "s1".into(),
        }),
        ..issued(nid, "")
    }
}

pub fn revocation(at: DateTime<Utc>) -> Revocation {
    Revocation {
        reason: RevocationReason::KeyCompromise,
        description: Some("leaked in CI logs".into()),
        at,
    }
}

pub fn list_all(now: DateTime<Utc>) -> ListQuery {
    ListQuery {
        actor_id: None,
        status: None,
        after: None,
        limit: 10_000,
        now,
    }
}

pub fn ids(keys: &[KeyRecord]) -> Vec<String> {
    keys.iter().map(|k| k.key_id.clone()).collect()
}

pub fn inserted(o: InsertOutcome) -> KeyRecord {
    match o {
        InsertOutcome::Inserted(k) => k,
        InsertOutcome::Existing(k) => panic!("expected Inserted, got Existing({})", k.key_id),
    }
}

#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(r: Result<T>, want: ConflictKind) {
    match r {
        Err(StorageError::Conflict(k)) if k == want => {}
        other => panic!("expected Conflict({want:?}), got {other:?}"),
    }
}

/// A lookup that found nothing.
#[track_caller]
pub fn assert_absent<T: std::fmt::Debug>(r: Result<Option<T>>) {
    match r {
        Ok(None) => {}
        other => panic!("expected Ok(None), got {other:?}"),
    }
}

#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(r: Result<T>) {
    match r {
        Err(StorageError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub fn short_opts() -> StoreOptions {
    StoreOptions {
        max_conns: 2,
        pool_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
    }
}
