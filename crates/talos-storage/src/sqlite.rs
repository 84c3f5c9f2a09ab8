//! The SQLite backend: what differs from PostgreSQL. Everything else is `ops.rs`.
//!
//! Writes that must be atomic with a read (quota checks) and multi-row inserts run on the
//! synchronous connection inside `BEGIN IMMEDIATE`: diesel implements multi-row SQLite inserts
//! only there (not through diesel-async's generic path), and taking the write lock up front
//! avoids SQLITE_BUSY on a read-to-write lock upgrade, which the busy timeout does not retry.
//! Serialising every writer is also what makes the quota count exact (PostgreSQL uses an
//! advisory lock per network instead, `pg.rs`).

use std::collections::HashSet;

use diesel::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::Object;

use crate::batch::{BATCH_CHUNK, room};
use crate::conn::{SqliteConn, SqliteStore, checkout, db_err, status_of};
use crate::error::Result;
use crate::model::{Quota, Touch};
use crate::ops::{Database, TxError};
use crate::row::{Row, kind_str, micros, nid_str};
use crate::sql::{self, Connection, KeyConn};
use crate::store::PoolStatus;

impl Connection for SqliteConn {}
impl KeyConn for SqliteConn {}

impl Database for SqliteStore {
    const SYSTEM: &'static str = "sqlite";
    type Conn = SqliteConn;
    type Pooled = Object<SqliteConn>;

    async fn conn(&self) -> Result<Object<SqliteConn>> {
        checkout(&self.pool).await
    }

    fn pool_status(&self) -> PoolStatus {
        status_of(&self.pool)
    }

    async fn insert_rows(&self, rows: Vec<Row>) -> Result<HashSet<(String, String)>> {
        let mut conn = self.conn().await?;
        conn.spawn_blocking(move |c| {
            c.immediate_transaction(|c| {
                let mut inserted = HashSet::new();
                for chunk in rows.chunks(BATCH_CHUNK) {
                    let ids: Vec<(String, String)> = sql::insert_batch(chunk).get_results(c)?;
                    inserted.extend(ids);
                }
                Ok(inserted)
            })
        })
        .await
        .map_err(db_err)
    }

    async fn insert_one_within(
        &self,
        row: Row,
        quota: &Quota,
    ) -> std::result::Result<std::result::Result<Row, i64>, TxError> {
        let mut conn = self.conn().await.map_err(TxError::Storage)?;
        let (max, now) = (quota.max, micros(quota.now));
        conn.spawn_blocking(move |c| {
            c.immediate_transaction(|c| {
                let current: i64 = sql::count_active(row.nid.clone(), now).get_result(c)?;
                if room(max, current) == 0 {
                    return Ok(Err(current));
                }
                let r: Row = sql::insert(row).get_result(c)?;
                Ok(Ok(r))
            })
        })
        .await
        .map_err(TxError::Db)
    }

    async fn insert_rows_within(
        &self,
        nid: String,
        rows: Vec<Row>,
        quota: &Quota,
    ) -> Result<(HashSet<(String, String)>, usize)> {
        let mut conn = self.conn().await?;
        let (max, now) = (quota.max, micros(quota.now));
        conn.spawn_blocking(move |c| {
            c.immediate_transaction(|c| {
                let current: i64 = sql::count_active(nid, now).get_result(c)?;
                let sent = room(max, current).min(rows.len());
                let mut inserted = HashSet::new();
                for chunk in rows[..sent].chunks(BATCH_CHUNK) {
                    let ids: Vec<(String, String)> = sql::insert_batch(chunk).get_results(c)?;
                    inserted.extend(ids);
                }
                Ok((inserted, sent))
            })
        })
        .await
        .map_err(db_err)
    }

    /// Nothing to do: the background `ANALYZE` after imports is a PostgreSQL measure (README,
    /// "Query plans without statistics").
    async fn after_bulk_insert(&self) {}

    /// One statement per key in one transaction: one commit (one fsync) for the batch, and no
    /// round trips to save (the database is in-process).
    async fn touch_rows(&self, touches: &[Touch]) -> Result<()> {
        let mut conn = self.conn().await?;
        let touches = touches.to_vec();
        conn.spawn_blocking(move |c| {
            c.immediate_transaction(|c| {
                for t in touches {
                    sql::touch(nid_str(t.nid), kind_str(t.kind), t.key_id, micros(t.at))
                        .execute(c)?;
                }
                Ok(())
            })
        })
        .await
        .map_err(db_err)
    }
}
