//! Storage hot paths: get by id, find by hash, and a 1000-key batch import, on SQLite (temp file)
//! and, when `TALOS_TEST_DATABASE_URL` is set, on PostgreSQL (a fresh database, dropped afterwards).
//!
//! `cargo bench -p talos-storage --bench storage`

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use talos_storage::*;
use tokio::runtime::Runtime;

// The contract suite's fixtures (key builders, per-run PostgreSQL database).
#[allow(dead_code)]
#[path = "../tests/contract/harness.rs"]
mod harness;
use harness::{PgDatabase, hash, imported, nid};

/// Rows present while measuring lookups, so indexes have some depth.
const PRELOAD: u32 = 10_000;

fn bench_store(
    c: &mut Criterion,
    rt: &Runtime,
    label: &str,
    store: Arc<dyn Store>,
    pg_dsn: Option<&str>,
) {
    let n = nid();
    rt.block_on(async {
        for chunk in (0..PRELOAD).collect::<Vec<_>>().chunks(1000) {
            let keys: Vec<KeyRecord> = chunk.iter().map(|&i| imported(n, i)).collect();
            store.insert_keys_batch(&keys).await.unwrap();
        }
        // A table that has never been analysed gives the planner no statistics, and it may then
        // pick a (nid, kind, …) index and filter on key_id. Autovacuum analyses a live table within
        // a minute; do it now so the figures are the steady-state ones.
        if let Some(dsn) = pg_dsn {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let mut conn = AsyncPgConnection::establish(dsn).await.unwrap();
            conn.batch_execute("ANALYZE api_keys").await.unwrap();
        }
    });
    let mut group = c.benchmark_group(label);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    // One round trip, for scale.
    group.bench_function("ping", |b| b.iter(|| rt.block_on(store.ping()).unwrap()));

    let ids: Vec<String> = (0..PRELOAD)
        .step_by(97)
        .map(|i| imported(n, i).key_id)
        .collect();
    let mut i = 0;
    group.bench_function("get_key", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            rt.block_on(store.get_key(n, KeyKind::Imported, &ids[i]))
                .unwrap()
                .expect("a preloaded key")
        })
    });

    let mut j = 0u32;
    group.bench_function("find_imported_by_hashes(2)", |b| {
        b.iter(|| {
            j = (j + 131) % PRELOAD;
            // A miss under a retired secret plus the hit, as verification does.
            let found = rt
                .block_on(store.find_imported_by_hashes(n, &[hash(PRELOAD + j), hash(j)]))
                .unwrap();
            assert!(found.is_some());
        })
    });

    let next = AtomicU32::new(PRELOAD);
    group.sample_size(10);
    group.bench_function("insert_keys_batch(1000)", |b| {
        b.iter_batched(
            || {
                let start = next.fetch_add(1000, Ordering::Relaxed);
                (start..start + 1000)
                    .map(|i| imported(n, i))
                    .collect::<Vec<_>>()
            },
            |keys| {
                let out = rt.block_on(store.insert_keys_batch(&keys)).unwrap();
                assert!(matches!(out[999], BatchItemOutcome::Inserted(_)));
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn storage(c: &mut Criterion) {
    // Current-thread, like an actix-web worker: no cross-thread wake-ups in the measured path.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = rt.block_on(async {
        migrate_up(&dsn).await.unwrap();
        connect(&dsn, &StoreOptions::default()).await.unwrap()
    });
    bench_store(c, &rt, "sqlite", store, None);

    // The database guard must be dropped outside the runtime (its Drop runs its own runtime).
    let pg = rt.block_on(PgDatabase::create());
    if let Some(db) = &pg {
        let store = rt.block_on(async {
            migrate_up(&db.dsn).await.unwrap();
            connect(&db.dsn, &StoreOptions::default()).await.unwrap()
        });
        bench_store(c, &rt, "postgres", store, Some(&db.dsn));
    }
    drop(rt);
    drop(pg);
}

criterion_group!(benches, storage);
criterion_main!(benches);
