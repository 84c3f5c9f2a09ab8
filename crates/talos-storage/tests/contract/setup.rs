//! Connection setup, migrations and failure modes; also `sqlite::memory:`.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use talos_storage::*;

use crate::harness::*;

/// Status before/after, up, up again (no-op), down, up again; then the schema works.
pub async fn migrations_up_down_up(db: &TestDb) {
    // The harness migrated already: take everything down first, then exercise the full cycle.
    let dsn = &db.dsn;
    let all: Vec<String> = migration_status(dsn)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(!all.is_empty());
    assert!(
        migration_status(dsn)
            .await
            .unwrap()
            .iter()
            .all(|m| m.applied)
    );
    assert!(pending_migrations(dsn).await.unwrap().is_empty());
    assert!(migrate_up(dsn).await.unwrap().is_empty(), "idempotent");

    let mut reverted = migrate_down_all(dsn).await.unwrap();
    reverted.reverse();
    assert_eq!(reverted, all, "down reverts every migration, newest first");
    assert!(
        migration_status(dsn)
            .await
            .unwrap()
            .iter()
            .all(|m| !m.applied)
    );
    assert_eq!(pending_migrations(dsn).await.unwrap(), all);
    assert!(
        db.store.get_key(nid(), KeyKind::Issued, "x").await.is_err(),
        "table is gone"
    );
    assert!(migrate_down_all(dsn).await.unwrap().is_empty());

    assert_eq!(migrate_up(dsn).await.unwrap(), all);
    assert!(migrate_up(dsn).await.unwrap().is_empty());
    assert!(
        migration_status(dsn)
            .await
            .unwrap()
            .iter()
            .all(|m| m.applied)
    );
    // A fresh store on the re-created schema works.
    let store = connect(dsn, &opts()).await.unwrap();
    let k = issued(nid(), &uuid_id());
    inserted(store.insert_key(&k).await.unwrap());
    assert_eq!(
        store
            .get_key(k.nid, KeyKind::Issued, &k.key_id)
            .await
            .unwrap(),
        Some(looked_up(&k))
    );
}

/// `down --steps N` reverts the newest N; `force VERSION` records exactly the migrations up to
/// VERSION as applied without running any; unknown versions are refused.
pub async fn migrations_down_steps_and_force(db: &TestDb) {
    let dsn = &db.dsn;
    let applied = |s: Vec<MigrationStatus>| -> Vec<String> {
        s.into_iter()
            .filter(|m| m.applied)
            .map(|m| m.name)
            .collect()
    };
    let all: Vec<String> = migration_status(dsn)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(all.len() >= 2, "the suite needs two migrations");
    let newest = all.last().unwrap().clone();
    assert_eq!(migrate_down(dsn, 1).await.unwrap(), vec![newest.clone()]);
    assert_eq!(
        pending_migrations(dsn).await.unwrap(),
        vec![newest.clone()],
        "one step reverts only the newest"
    );
    assert_eq!(migrate_up(dsn).await.unwrap(), vec![newest.clone()]);

    // Force without running: the schema stays, only the bookkeeping changes.
    let first = all[0].clone();
    let version = first.split('_').next().unwrap().to_string();
    assert_eq!(
        migrate_force(dsn, &version).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(
        applied(migration_status(dsn).await.unwrap()),
        vec![first.clone()]
    );
    assert!(
        db.store.get_key(nid(), KeyKind::Issued, "x").await.is_ok(),
        "force ran no migration: the tables are still there"
    );
    let bare = version.replace('-', "");
    assert_eq!(
        migrate_force(dsn, &bare).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(
        migrate_force(dsn, &newest).await.unwrap(),
        all,
        "the full name works too"
    );
    assert!(pending_migrations(dsn).await.unwrap().is_empty());
    let err = migrate_force(dsn, "1999").await.unwrap_err().to_string();
    assert!(
        err.contains("unknown migration version") && err.contains(&first),
        "{err}"
    );
    assert!(
        pending_migrations(dsn).await.unwrap().is_empty(),
        "refused: nothing changed"
    );

    assert_eq!(
        migrate_down(dsn, 10).await.unwrap().len(),
        all.len(),
        "more steps than applied"
    );
    assert!(migrate_down(dsn, 1).await.unwrap().is_empty());
    assert_eq!(migrate_force(dsn, "0").await.unwrap(), Vec::<String>::new());
    assert_eq!(migrate_up(dsn).await.unwrap(), all);
}

/// A fresh SQLite file: status before migrating shows everything pending.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_fresh_status() {
    let (_dir, dsn) = sqlite_dsn();
    let status = migration_status(&dsn).await.unwrap();
    assert!(!status.is_empty() && status.iter().all(|m| !m.applied));
    let applied = migrate_up(&dsn).await.unwrap();
    assert_eq!(
        applied,
        status.iter().map(|m| m.name.clone()).collect::<Vec<_>>()
    );
    assert!(pending_migrations(&dsn).await.unwrap().is_empty());
}

/// A freshly created PostgreSQL database: nothing applied until `migrate_up`.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_fresh_status() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let status = migration_status(&db.dsn).await.unwrap();
    assert!(!status.is_empty() && status.iter().all(|m| !m.applied));
    assert_eq!(
        pending_migrations(&db.dsn).await.unwrap().len(),
        status.len()
    );
    assert_eq!(migrate_up(&db.dsn).await.unwrap().len(), status.len());
    assert!(migrate_up(&db.dsn).await.unwrap().is_empty());
}

/// Migrations run on a blocking thread, so a current-thread runtime (actix's) does not panic.
#[tokio::test]
async fn migrations_on_current_thread_runtime() {
    let (_dir, dsn) = sqlite_dsn();
    assert!(!migrate_up(&dsn).await.unwrap().is_empty());
    let store = connect(&dsn, &opts()).await.unwrap();
    store.ping().await.unwrap();
    if let Some(db) = PgDatabase::create().await {
        assert!(!migrate_up(&db.dsn).await.unwrap().is_empty());
        connect(&db.dsn, &opts())
            .await
            .unwrap()
            .ping()
            .await
            .unwrap();
    }
}

/// Never creates a PostgreSQL database: a missing one is an error, not a silent create.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_migrate_missing_database() {
    let Some(admin) = admin_url() else { return };
    let dsn = with_database(
        &admin,
        &format!("talos_missing_{}", uuid::Uuid::new_v4().simple()),
    );
    assert!(matches!(
        migrate_up(&dsn).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        connect(&dsn, &short_opts()).await,
        Err(StorageError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_closed_port() {
    // Needs no running server: nothing listens on port 1.
    let dsn = "postgres://postgres@127.0.0.1:1/x?sslmode=disable";
    match connect(dsn, &short_opts()).await {
        Err(StorageError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {:?}", other.map(|_| "a store")),
    }
    assert!(matches!(
        migrate_up(dsn).await,
        Err(StorageError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_unroutable_host_is_bounded() {
    // A blackholed address: the connect timeout (not the OS's minutes-long one) ends the wait.
    let started = std::time::Instant::now();
    let r = connect("postgres://postgres@10.255.255.1:5432/x", &short_opts()).await;
    assert!(
        matches!(r, Err(StorageError::Unavailable(_))),
        "{:?}",
        r.map(|_| ())
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_sqlite_unopenable() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}/no/such/dir/x.db", dir.path().display());
    assert!(matches!(
        connect(&dsn, &short_opts()).await,
        Err(StorageError::Unavailable(_))
    ));
}

/// The database vanishes under a running store: operations fail with Unavailable, no panic/hang.
#[tokio::test(flavor = "multi_thread")]
async fn unavailable_after_database_dropped() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    migrate_up(&db.dsn).await.unwrap();
    let store = connect(&db.dsn, &short_opts()).await.unwrap();
    store.ping().await.unwrap();
    PgDatabase::drop_now(&admin_url().unwrap(), &db.name).await;
    for _ in 0..3 {
        match store.get_key(nid(), KeyKind::Issued, "x").await {
            Err(StorageError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors() {
    for dsn in [
        "mysql://u:p@tcp(h:3306)/db",
        "talos.db",
        "postgres://h/db?sslmode=verify-full",
    ] {
        assert!(
            matches!(connect(dsn, &opts()).await, Err(StorageError::Config(_))),
            "{dsn}"
        );
        assert!(
            matches!(migrate_up(dsn).await, Err(StorageError::Config(_))),
            "{dsn}"
        );
    }
    assert_eq!(
        Backend::from_dsn("postgresql://h/db?sslmode=disable").unwrap(),
        Backend::Postgres
    );
    assert_eq!(
        Backend::from_dsn("sqlite::memory:").unwrap(),
        Backend::Sqlite
    );
}

/// `sqlite::memory:`: migrated on connect, one shared connection, concurrency still correct.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_memory_store() {
    let db = crate::harness::sqlite_memory().await;
    crate::basic::roundtrip(&db).await;
    crate::batch::concurrent_imports(&db).await;
    crate::batch::concurrent_rotations(&db).await;
    crate::batch::batch_duplicates(&db).await;
    // Separate connects are separate databases.
    let other = connect("sqlite::memory:", &opts()).await.unwrap();
    assert!(
        other
            .list_keys(nid(), KeyKind::Issued, &list_all(now()))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        other.count_imported_with_unknown_secret(&[]).await.unwrap(),
        0
    );
}

/// Callers drop futures (a client disconnects, a timeout fires), and actix-web runs handlers on
/// current-thread runtimes. A dropped operation must neither panic nor break the store. (On SQLite,
/// dropping a diesel-async SyncConnectionWrapper query mid-flight calls `block_in_place`, which
/// panics on a current-thread runtime; the store runs operations detached to avoid that.)
#[tokio::test]
async fn cancelled_operations_leave_the_store_usable() {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    use std::time::Duration;

    let (_dir, dsn) = sqlite_dsn();
    migrate_up(&dsn).await.unwrap();
    let store = connect(
        &dsn,
        &StoreOptions {
            max_conns: 1,
            ..opts()
        },
    )
    .await
    .unwrap();
    // Hold the write lock from outside, so the store's INSERT is stuck in SQLite's busy wait on its
    // blocking thread when the caller gives up.
    let path = dsn.trim_start_matches("sqlite://").to_owned();
    let mut locker = diesel::SqliteConnection::establish(&path).unwrap();
    locker.batch_execute("BEGIN IMMEDIATE").unwrap();
    let n = nid();
    let k = issued(n, &uuid_id());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), store.insert_key(&k))
            .await
            .is_err()
    );
    let batch: Vec<KeyRecord> = (0..10).map(|i| imported(n, i)).collect();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), store.insert_keys_batch(&batch))
            .await
            .is_err()
    );
    locker.batch_execute("COMMIT").unwrap();
    store.ping().await.unwrap();
    // The abandoned operations still ran to completion.
    let mut found = false;
    for _ in 0..100 {
        if matches!(
            store.get_key(n, KeyKind::Issued, &k.key_id).await,
            Ok(Some(_))
        ) && store
            .find_imported_by_hashes(n, &[hash(9)])
            .await
            .unwrap()
            .is_some()
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(found, "detached operations did not complete");
    run_cancellations(&store).await;

    if let Some(db) = PgDatabase::create().await {
        migrate_up(&db.dsn).await.unwrap();
        let store = connect(
            &db.dsn,
            &StoreOptions {
                max_conns: 1,
                ..opts()
            },
        )
        .await
        .unwrap();
        run_cancellations(&store).await;
    }
}

async fn run_cancellations(store: &std::sync::Arc<dyn Store>) {
    let n = nid();
    for round in 0..50u32 {
        let keys: Vec<KeyRecord> = (0..50)
            .map(|i| imported(n, 10_000 + round * 50 + i))
            .collect();
        let delay = std::time::Duration::from_micros(u64::from(round % 10) * 200);
        let _ = tokio::time::timeout(delay, store.insert_keys_batch(&keys)).await;
        let k = issued(n, &uuid_id());
        let _ = tokio::time::timeout(delay, store.insert_key(&k)).await;
        let _ = tokio::time::timeout(
            delay,
            store.rotate_key(n, &k.key_id, &issued(n, &uuid_id()), &revocation(now())),
        )
        .await;
        store.ping().await.unwrap();
        assert_absent(store.get_key(n, KeyKind::Issued, "missing").await);
    }
    // Whatever completed is consistent: every listed key reads back, and no rotation left two
    // active successors or a half-done revocation.
    for kind in [KeyKind::Issued, KeyKind::Imported] {
        for k in store.list_keys(n, kind, &list_all(now())).await.unwrap() {
            assert_eq!(
                store.get_key(n, kind, &k.key_id).await.unwrap(),
                Some(looked_up(&k))
            );
        }
    }
}

/// Options for the stall tests: a generous pool timeout, so only the statement timeout can end
/// the wait.
fn stall_opts() -> StoreOptions {
    StoreOptions {
        max_conns: 2,
        pool_timeout: std::time::Duration::from_secs(120),
        statement_timeout: std::time::Duration::from_secs(1),
        ..opts()
    }
}

/// Awaits a storage call that must fail as `Unavailable` because of the statement timeout. The
/// guard (far above the 1 s statement timeout) only turns "hangs until the lock is released"
/// into a failure instead of a stuck test.
async fn expect_unavailable<T: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T>>,
) {
    match tokio::time::timeout(std::time::Duration::from_secs(60), fut).await {
        Ok(Err(StorageError::Unavailable(_))) => {}
        Ok(other) => panic!("{what}: expected Unavailable, got {other:?}"),
        Err(_) => panic!("{what}: still waiting for the locked table after 60 s"),
    }
}

/// A writer holding SQLite's lock makes a write fail after `statement_timeout` (the busy timeout
/// is no longer than it), not after the much longer pool timeout.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_stalled_database_fails_within_the_statement_timeout() {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    let (_dir, dsn) = sqlite_dsn();
    migrate_up(&dsn).await.unwrap();
    let store = connect(&dsn, &stall_opts()).await.unwrap();
    let path = dsn.trim_start_matches("sqlite://").to_owned();
    let mut locker = diesel::SqliteConnection::establish(&path).unwrap();
    locker.batch_execute("BEGIN IMMEDIATE").unwrap();
    let n = nid();
    expect_unavailable("insert", store.insert_key(&issued(n, &uuid_id()))).await;
    locker.batch_execute("COMMIT").unwrap();
    inserted(store.insert_key(&issued(n, &uuid_id())).await.unwrap());
}

/// `LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE` held by another session (on a private
/// database): reads and writes fail with `Unavailable` once PostgreSQL's `statement_timeout`
/// cancels them, and the store works again once the lock is gone.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_stalled_database_fails_within_the_statement_timeout() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    migrate_up(&db.dsn).await.unwrap();
    let store = connect(&db.dsn, &stall_opts()).await.unwrap();
    let n = nid();
    let k = inserted(store.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let mut locker = AsyncPgConnection::establish(&db.dsn).await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    expect_unavailable("get", store.get_key(n, KeyKind::Issued, &k.key_id)).await;
    expect_unavailable("insert", store.insert_key(&issued(n, &uuid_id()))).await;
    expect_unavailable("count", store.count_active(n, now())).await;
    // Readiness touches the keys table, so the lock fails it too (it answered ok before).
    expect_unavailable("ping", store.ping()).await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        store.get_key(n, KeyKind::Issued, &k.key_id).await.unwrap(),
        Some(looked_up(&k))
    );
}
