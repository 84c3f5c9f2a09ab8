//! The PostgreSQL backend: what differs from SQLite. Everything else is `ops.rs`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::batch::{BATCH_CHUNK, room};
use crate::conn::{PgStore, checkout, status_of};
use crate::error::Result;
use crate::model::{Quota, Touch};
use crate::ops::{Database, TxError};
use crate::row::{Row, kind_str, micros, nid_str};
use crate::sql::{self, Connection, KeyConn};
use crate::store::PoolStatus;

impl Connection for AsyncPgConnection {}
impl KeyConn for AsyncPgConnection {}

impl Database for PgStore {
    const SYSTEM: &'static str = "postgresql";
    type Conn = AsyncPgConnection;
    type Pooled = Object<AsyncPgConnection>;

    async fn conn(&self) -> Result<Object<AsyncPgConnection>> {
        checkout(&self.pool).await
    }

    fn pool_status(&self) -> PoolStatus {
        status_of(&self.pool)
    }

    async fn insert_rows(&self, rows: Vec<Row>) -> Result<HashSet<(String, String)>> {
        let mut conn = self.conn().await?;
        let inserted = conn
            .transaction::<_, TxError, _>(async |c| {
                let mut inserted = HashSet::new();
                for chunk in rows.chunks(BATCH_CHUNK) {
                    let ids: Vec<(String, String)> =
                        sql::insert_batch(chunk).get_results(c).await?;
                    inserted.extend(ids);
                }
                Ok(inserted)
            })
            .await?;
        Ok(inserted)
    }

    async fn insert_one_within(
        &self,
        row: Row,
        quota: &Quota,
    ) -> std::result::Result<std::result::Result<Row, i64>, TxError> {
        let mut conn = self.conn().await.map_err(TxError::Storage)?;
        conn.transaction::<_, TxError, _>(async |c| {
            let current = lock_and_count(c, &row.nid, quota.now).await?;
            if room(quota.max, current) == 0 {
                return Ok(Err(current));
            }
            let r = sql::insert(row).get_result::<Row>(c).await?;
            Ok(Ok(r))
        })
        .await
    }

    async fn insert_rows_within(
        &self,
        nid: String,
        rows: Vec<Row>,
        quota: &Quota,
    ) -> Result<(HashSet<(String, String)>, usize)> {
        let mut conn = self.conn().await?;
        let out = conn
            .transaction::<_, TxError, _>(async |c| {
                let current = lock_and_count(c, &nid, quota.now).await?;
                let sent = room(quota.max, current).min(rows.len());
                let mut inserted = HashSet::new();
                for chunk in rows[..sent].chunks(BATCH_CHUNK) {
                    let ids: Vec<(String, String)> =
                        sql::insert_batch(chunk).get_results(c).await?;
                    inserted.extend(ids);
                }
                Ok((inserted, sent))
            })
            .await?;
        Ok(out)
    }

    /// A background `ANALYZE`: a freshly imported table has no statistics until something
    /// analyses it (SQLite plans without them).
    async fn after_bulk_insert(&self) {
        let due = ANALYZE_LAST
            .lock()
            .map(|l| l.is_none_or(|t| t.elapsed() >= ANALYZE_GAP))
            .unwrap_or(true);
        if !due || ANALYZE_RUNNING.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(mut conn) = self.conn().await else {
            ANALYZE_RUNNING.store(false, Ordering::Release);
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = conn.batch_execute(crate::migrate::PG_ANALYZE).await {
                tracing::warn!(error = %e, "ANALYZE after a batch import failed");
            }
            if let Ok(mut l) = ANALYZE_LAST.lock() {
                *l = Some(Instant::now());
            }
            ANALYZE_RUNNING.store(false, Ordering::Release);
        });
    }

    async fn touch_rows(&self, touches: &[Touch]) -> Result<()> {
        use diesel::sql_types::{Array, BigInt, Text};
        let nids: Vec<String> = touches.iter().map(|t| nid_str(t.nid)).collect();
        let kinds: Vec<String> = touches
            .iter()
            .map(|t| kind_str(t.kind).to_owned())
            .collect();
        let ids: Vec<String> = touches.iter().map(|t| t.key_id.clone()).collect();
        let ats: Vec<i64> = touches.iter().map(|t| micros(t.at)).collect();
        let mut conn = self.conn().await?;
        diesel::sql_query(TOUCH_BATCH)
            .bind::<Array<Text>, _>(nids)
            .bind::<Array<Text>, _>(kinds)
            .bind::<Array<Text>, _>(ids)
            .bind::<Array<BigInt>, _>(ats)
            .execute(&mut *conn)
            .await
            .map_err(crate::conn::db_err)?;
        Ok(())
    }
}

/// Serialises quota-checked inserts into one network until the transaction ends, then counts its
/// active keys. READ COMMITTED takes a fresh snapshot per statement, so the count sees every
/// insert committed by the previous holder of the lock. (SQLite needs no such lock: its write
/// transactions are serialised anyway; see `sqlite.rs`.)
/// A batch of `last_used_time` writes as one statement: the rows come in as four arrays, the
/// newest time per key wins, and a row only ever moves forward (as `sql::touch`). One round trip
/// instead of one per key, so a flush holds its pooled connection for one statement, not for a
/// hundred round trips that verifications sharing the pool would queue behind.
const TOUCH_BATCH: &str = r#"
UPDATE api_keys AS k SET last_used_time = t.at
FROM (
    SELECT nid, kind, key_id, max(at) AS at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(nid, kind, key_id, at)
    GROUP BY nid, kind, key_id
) AS t
WHERE k.nid = t.nid COLLATE "C"
  AND k.kind = t.kind COLLATE "C"
  AND k.key_id = t.key_id COLLATE "C"
  AND (k.last_used_time IS NULL OR k.last_used_time < t.at)
"#;

async fn lock_and_count(
    c: &mut AsyncPgConnection,
    nid: &str,
    now: DateTime<Utc>,
) -> diesel::QueryResult<i64> {
    // Two-key form with a fixed class id, so the lock cannot collide with other users of
    // single-key advisory locks on the same database.
    diesel::sql_query("SELECT pg_advisory_xact_lock(7243, hashtext($1))")
        .bind::<diesel::sql_types::Text, _>(nid)
        .execute(c)
        .await?;
    sql::count_active(nid.to_owned(), micros(now))
        .get_result(c)
        .await
}

/// Background `ANALYZE` after batch imports: at most one at a time per process and one per
/// [`ANALYZE_GAP`], so a long import is analysed as it goes (the newest rows of the last gap may
/// wait for the next import, autovacuum or `migrate up`).
static ANALYZE_RUNNING: AtomicBool = AtomicBool::new(false);
static ANALYZE_LAST: Mutex<Option<Instant>> = Mutex::new(None);
const ANALYZE_GAP: Duration = Duration::from_secs(10);
