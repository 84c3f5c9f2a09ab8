//! The storage contract: every case runs against SQLite (a temp file) and, when
//! `TALOS_TEST_DATABASE_URL` is set, against PostgreSQL (a fresh database per test).

#[path = "contract/basic.rs"]
mod basic;
#[path = "contract/batch.rs"]
mod batch;
#[path = "contract/harness.rs"]
mod harness;
#[path = "contract/list.rs"]
mod list;
#[path = "contract/metering.rs"]
mod metering;
#[path = "contract/quota.rs"]
mod quota;
#[path = "contract/setup.rs"]
mod setup;

/// Expands each `module::case` into `sqlite::case` and `postgres::case` tests.
macro_rules! contract {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let db = crate::harness::sqlite().await;
                    crate::$module::$case(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let Some(db) = crate::harness::postgres().await else { return };
                    crate::$module::$case(&db).await;
                }
            )*
        }
    };
}

contract!(
    basic::roundtrip,
    basic::request_id_idempotency,
    basic::duplicates,
    basic::update_patch,
    basic::revoke,
    basic::rotate,
    basic::delete,
    basic::touch,
    basic::touch_batch,
    basic::hashes,
    basic::counts,
    basic::invalidations,
    list::pagination,
    list::filters,
    batch::batch_duplicates,
    batch::batch_thousand,
    batch::network_isolation,
    batch::concurrent_revokes,
    batch::concurrent_imports,
    batch::concurrent_rotations,
    batch::concurrent_batches,
    setup::migrations_up_down_up,
    setup::migrations_down_steps_and_force,
    quota::quota_exact_under_concurrency,
    quota::quota_insert_keeps_idempotency,
    metering::credits_exact_under_concurrency,
    metering::credits_outcomes,
    metering::credits_refill_once_per_boundary,
    metering::rotation_carries_credits,
    metering::balances,
    metering::ingest_exact_under_concurrency,
    metering::usage_history,
);
