//! A million keys on PostgreSQL with no statistics (PostgreSQL leg only: runs when
//! `TALOS_TEST_DATABASE_URL` is set).
//!
//! Found when a million imported keys went into a fresh database with autovacuum off: without
//! statistics the planner answered `find_imported_by_hashes` from a `(nid, kind, …)` index and
//! filtered half a million rows per lookup. The verify path's queries must not depend on fresh
//! statistics. The table is filled in SQL (`generate_series`, no ANALYZE), its statistics are
//! wiped as on a never-analysed table, and every hot query is run *through the store* several
//! times (past PostgreSQL's switch to generic plans for prepared statements); which index served
//! it is read from `pg_stat_user_indexes` (no sequential scan allowed).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use talos_storage::*;
use uuid::Uuid;

#[path = "contract/harness.rs"]
#[allow(dead_code)]
mod harness;

const ROWS: i64 = 1_000_000;
const NID: &str = "6f1c1a2e-4b7d-4c55-9a51-0c3e8f2b9d10";

/// Half issued, half imported (with a hash), 1000 actors, one network.
const FILL: &str = "
INSERT INTO api_keys (nid, key_id, kind, name, actor_id, scopes, metadata, status, visibility,
                      create_time, update_time, request_id, hash, hash_secret_id)
SELECT '6f1c1a2e-4b7d-4c55-9a51-0c3e8f2b9d10', 'k' || lpad(g::text, 8, '0'),
       CASE WHEN g % 2 = 0 THEN 'issued' ELSE 'imported' END,
       'n', 'actor-' || (g % 1000), '[]', '{}', 1, 0, 1700000000000000, 1700000000000000,
       'req-' || g,
       CASE WHEN g % 2 = 1 THEN sha256(g::text::bytea) END,
       CASE WHEN g % 2 = 1 THEN 's1' END
FROM generate_series(1, 1000000) g;
";

/// As on a table nobody ever analysed (a superuser may edit the catalog; the test database is
/// private to this test).
const FORGET_STATISTICS: &str = "
DELETE FROM pg_statistic WHERE starelid = 'api_keys'::regclass;
UPDATE pg_class SET reltuples = -1, relpages = 0
 WHERE oid = 'api_keys'::regclass OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'api_keys'::regclass);
";

#[derive(QueryableByName)]
struct Scan {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    scans: i64,
}

/// Index scans per index of `api_keys`, plus `seq` for sequential scans of the table.
async fn scans(conn: &mut AsyncPgConnection) -> HashMap<String, i64> {
    conn.batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    let rows: Vec<Scan> = diesel::sql_query(
        "SELECT indexrelname::text AS name, idx_scan AS scans FROM pg_stat_user_indexes
          WHERE relname = 'api_keys'
         UNION ALL
         SELECT 'seq', seq_scan FROM pg_stat_user_tables WHERE relname = 'api_keys'",
    )
    .load(conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| (r.name, r.scans)).collect()
}

/// Runs `calls` queries through the store, waits for the server to publish their statistics,
/// and asserts that one of `allowed` indexes served every one of them and nothing else ran.
async fn served_by(
    stats: &mut AsyncPgConnection,
    what: &str,
    allowed: &[&str],
    calls: i64,
    run: impl AsyncFnOnce(),
) {
    let before = scans(stats).await;
    run().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let delta = loop {
        let after = scans(stats).await;
        let delta: HashMap<String, i64> = after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, d)| *d != 0)
            .collect();
        let served: i64 = allowed
            .iter()
            .map(|i| delta.get(*i).copied().unwrap_or(0))
            .sum();
        // Backends publish their counters within a second or so of going idle.
        if served >= calls || Instant::now() > deadline {
            break delta;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let served: i64 = allowed
        .iter()
        .map(|i| delta.get(*i).copied().unwrap_or(0))
        .sum();
    let others: Vec<_> = delta
        .iter()
        .filter(|(k, _)| !allowed.contains(&k.as_str()))
        .collect();
    assert!(
        served >= calls && others.is_empty(),
        "{what}: expected {calls} scans of {allowed:?}, got {delta:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_queries_use_their_index_on_a_million_rows_without_statistics() {
    let Some(db) = harness::PgDatabase::create().await else {
        return;
    };
    migrate_up(&db.dsn).await.expect("migrate");
    let mut admin = AsyncPgConnection::establish(&db.dsn).await.unwrap();
    admin
        .batch_execute(FILL)
        .await
        .expect("fill a million rows");
    admin.batch_execute(FORGET_STATISTICS).await.unwrap();
    // One connection per phase: every repetition runs on the same prepared statement, so the
    // later ones run PostgreSQL's generic plan; closing it publishes its statistics at once (an
    // idle backend may hold them for up to 10 s).
    let dsn = db.dsn.clone();
    let fresh = || {
        let dsn = dsn.clone();
        async move {
            let opts = StoreOptions {
                max_conns: 1,
                ..StoreOptions::default()
            };
            connect(&dsn, &opts).await.unwrap()
        }
    };
    let nid = Uuid::parse_str(NID).unwrap();
    const CALLS: i64 = 8;

    served_by(
        &mut admin,
        "find_imported_by_hashes",
        &["api_keys_nid_hash_key"],
        CALLS,
        async || {
            let store = fresh().await;
            for g in (1..=CALLS).map(|i| (i * 99_991 % ROWS) | 1) {
                let hash: [u8; 32] = sha256_of(&g.to_string());
                let found = store.find_imported_by_hashes(nid, &[hash]).await.unwrap();
                assert_eq!(found.unwrap().key_id, format!("k{g:08}"));
            }
        },
    )
    .await;

    served_by(
        &mut admin,
        "get_key",
        &["api_keys_pkey", "api_keys_nid_kind_key_id_idx"],
        CALLS,
        async || {
            let store = fresh().await;
            for g in (1..=CALLS).map(|i| (i * 99_991 % ROWS) & !1) {
                let k = store
                    .get_key(nid, KeyKind::Issued, &format!("k{g:08}"))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(k.kind, KeyKind::Issued);
            }
        },
    )
    .await;

    served_by(
        &mut admin,
        "list_keys by actor",
        &["api_keys_nid_kind_actor_id_key_id_idx"],
        CALLS,
        async || {
            let store = fresh().await;
            for i in 0..CALLS {
                let q = ListQuery {
                    actor_id: Some(format!("actor-{}", i * 2)),
                    status: None,
                    after: None,
                    limit: 50,
                    now: Utc::now(),
                };
                let page = store.list_keys(nid, KeyKind::Issued, &q).await.unwrap();
                assert_eq!(page.len(), 50);
            }
        },
    )
    .await;

    served_by(
        &mut admin,
        "count_active",
        &["api_keys_nid_status_expire_time_idx"],
        CALLS,
        async || {
            let store = fresh().await;
            for _ in 0..CALLS {
                // Another network: the count a quota check makes before issuing.
                let n = store
                    .count_active(Uuid::new_v4(), Utc::now())
                    .await
                    .unwrap();
                assert_eq!(n, 0);
            }
        },
    )
    .await;
}

fn sha256_of(s: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).into()
}
