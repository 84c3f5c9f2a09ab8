//! The `Store` implementation, written once for both backends: `impl<D: Database> Store for D`.
//!
//! A backend is a [`Database`]: a pool of connections that can run every statement of `sql.rs`
//! ([`KeyConn`]), plus the few operations whose SQL or transaction handling genuinely differs
//! between PostgreSQL and SQLite (quota-checked inserts, multi-row inserts, statistics).

use std::collections::HashSet;
use std::future::Future;
use std::ops::DerefMut;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::OptionalExtension;
use diesel::result::{DatabaseErrorKind, Error as DieselError, QueryResult};
use diesel_async::{AsyncConnection, AsyncConnectionCore, SimpleAsyncConnection};
use uuid::Uuid;

use crate::batch::{BatchPlan, quota_exceeded};
use crate::conn::db_err;
use crate::error::{ConflictKind, Result, StorageError};
use crate::model::{
    ActorBalance, BatchItemOutcome, CreditSpend, IngestOutcome, InsertOutcome, Invalidation,
    KeyKind, KeyPatch, KeyRecord, ListQuery, Quota, RefillInterval, Revocation, Touch, UsageRecord,
};
use crate::row::{PatchRow, Row, kind_str, micros, nid_str};
use crate::sql::{self, Execute, Fetch, KeyConn, ListBackend};
use crate::store::{PoolStatus, Store};

/// One backend: its pool, and what cannot be written once for both.
pub(crate) trait Database: Send + Sync + 'static {
    /// The OpenTelemetry `db.system.name` of the backend (the spans of every operation carry it).
    const SYSTEM: &'static str;
    type Conn: KeyConn;
    /// A checked-out connection; back to the pool on drop.
    type Pooled: DerefMut<Target = Self::Conn> + Send;

    fn conn(&self) -> impl Future<Output = Result<Self::Pooled>> + Send;

    fn pool_status(&self) -> PoolStatus;

    /// Inserts batch rows, `BATCH_CHUNK` per statement, in one transaction; returns the
    /// `(nid, key_id)` of the rows inserted (the others hit an existing row).
    fn insert_rows(
        &self,
        rows: Vec<Row>,
    ) -> impl Future<Output = Result<HashSet<(String, String)>>> + Send;

    /// Inserts one row if its network's quota has room, atomically: `Ok(Err(current))` when full.
    fn insert_one_within(
        &self,
        row: Row,
        quota: &Quota,
    ) -> impl Future<Output = std::result::Result<std::result::Result<Row, i64>, TxError>> + Send;

    /// Inserts as many of `rows` (in order, all of network `nid`) as the quota has room for,
    /// atomically; returns the inserted ids and how many rows were sent.
    fn insert_rows_within(
        &self,
        nid: String,
        rows: Vec<Row>,
        quota: &Quota,
    ) -> impl Future<Output = Result<(HashSet<(String, String)>, usize)>> + Send;

    /// Called after a batch inserted rows.
    fn after_bulk_insert(&self) -> impl Future<Output = ()> + Send;

    /// Writes a batch of `last_used_time`s, each only forward, atomically.
    fn touch_rows(&self, touches: &[Touch]) -> impl Future<Output = Result<()>> + Send;
}

/// diesel's backend type (`Pg`, `Sqlite`) of a [`Database`].
type DieselBackend<D> = <<D as Database>::Conn as AsyncConnectionCore>::Backend;

/// Error type inside transactions: a diesel error (so `?` works on queries) or a domain outcome
/// (NotFound, NotActive) that must roll the transaction back.
pub(crate) enum TxError {
    Db(DieselError),
    Storage(StorageError),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Db(e)
    }
}

impl From<TxError> for StorageError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Db(e) => db_err(e),
            TxError::Storage(e) => e,
        }
    }
}

/// The error for a unique violation on key id or hash (or a request id whose row vanished).
fn duplicate() -> StorageError {
    StorageError::Conflict(ConflictKind::Duplicate)
}

/// A row read back, as a record; a missing row is `NotFound`.
fn record(row: QueryResult<Row>) -> Result<KeyRecord> {
    row.map_err(db_err)?.into_record()
}

/// A row that may be missing, as a record.
fn optional_record(row: QueryResult<Row>) -> Result<Option<KeyRecord>> {
    row.optional()
        .map_err(db_err)?
        .map(Row::into_record)
        .transpose()
}

/// A row read with its actor's quota (`sql::lookup_by_id`, `sql::by_hashes`), as a record.
fn looked_up(row: (Row, Option<i64>)) -> Result<KeyRecord> {
    let (row, quota) = row;
    row.into_record_with(Some(quota))
}

pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// After a unique violation on inserting `key`: the row of a twin request with the same request
/// id, if that is what collided.
async fn existing_twin<D: Database>(db: &D, key: &KeyRecord) -> Result<InsertOutcome> {
    let Some(request_id) = &key.request_id else {
        return Err(duplicate());
    };
    let q = sql::by_request_id(nid_str(key.nid), kind_str(key.kind), request_id.clone());
    let mut conn = db.conn().await?;
    match optional_record(conn.fetch_one(q).await)? {
        Some(r) => Ok(InsertOutcome::Existing(r)),
        None => Err(duplicate()),
    }
}

#[async_trait]
impl<D: Database> Store for D {
    fn pool_status(&self) -> Option<PoolStatus> {
        Some(Database::pool_status(self))
    }

    #[tracing::instrument(level = "debug", name = "db.ping", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        // Touches the keys table, so a lock that blocks every key read (say, an
        // `ACCESS EXCLUSIVE` lock held by a migration) fails readiness too.
        conn.batch_execute("SELECT 1 FROM api_keys LIMIT 1")
            .await
            .map_err(db_err)
    }

    #[tracing::instrument(level = "debug", name = "db.insert_key", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn insert_key(&self, key: &KeyRecord) -> Result<InsertOutcome> {
        let row = Row::from_record(key)?;
        // Insert first and look for the request id only on conflict: the common path is one
        // statement, and a concurrent twin request loses the race cleanly at the unique index.
        let res = self.conn().await?.fetch_one(sql::insert(row)).await;
        match res {
            Ok(r) => Ok(InsertOutcome::Inserted(r.into_record()?)),
            Err(e) if is_unique_violation(&e) => existing_twin(self, key).await,
            Err(e) => Err(db_err(e)),
        }
    }

    #[tracing::instrument(level = "debug", name = "db.insert_key_within", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn insert_key_within(&self, key: &KeyRecord, quota: &Quota) -> Result<InsertOutcome> {
        let row = Row::from_record(key)?;
        match self.insert_one_within(row, quota).await {
            Ok(Ok(r)) => Ok(InsertOutcome::Inserted(r.into_record()?)),
            Ok(Err(current)) => Err(quota_exceeded(quota.max, current)),
            Err(TxError::Db(e)) if is_unique_violation(&e) => existing_twin(self, key).await,
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(level = "debug", name = "db.insert_keys_batch", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn insert_keys_batch(&self, keys: &[KeyRecord]) -> Result<Vec<BatchItemOutcome>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let plan = BatchPlan::new(keys)?;
        let rows: Vec<Row> = plan.rows().into_iter().cloned().collect();
        let inserted = self.insert_rows(rows).await?;
        if !inserted.is_empty() {
            self.after_bulk_insert().await;
        }
        plan.outcomes(&inserted)
    }

    #[tracing::instrument(level = "debug", name = "db.insert_keys_batch_within", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn insert_keys_batch_within(
        &self,
        keys: &[KeyRecord],
        quota: &Quota,
    ) -> Result<Vec<BatchItemOutcome>> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        let plan = BatchPlan::new(keys)?;
        let rows: Vec<Row> = plan.rows().into_iter().cloned().collect();
        let (inserted, sent) = self
            .insert_rows_within(nid_str(first.nid), rows, quota)
            .await?;
        plan.outcomes_within(&inserted, sent)
    }

    #[tracing::instrument(level = "debug", name = "db.get_key", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn get_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<Option<KeyRecord>> {
        let q = sql::lookup_by_id(nid_str(nid), kind_str(kind), key_id.to_owned());
        let row = self.conn().await?.fetch_one(q).await.optional();
        row.map_err(db_err)?.map(looked_up).transpose()
    }

    #[tracing::instrument(level = "debug", name = "db.list_keys", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn list_keys(
        &self,
        nid: Uuid,
        kind: KeyKind,
        query: &ListQuery,
    ) -> Result<Vec<KeyRecord>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let q = <DieselBackend<D> as ListBackend>::list(nid_str(nid), kind_str(kind), query);
        let rows = self.conn().await?.fetch_all(q).await.map_err(db_err)?;
        rows.into_iter().map(Row::into_record).collect()
    }

    #[tracing::instrument(level = "debug", name = "db.update_key", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn update_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        patch: &KeyPatch,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord> {
        let changes = PatchRow::new(patch, now)?;
        let q = sql::update(nid_str(nid), kind_str(kind), key_id.to_owned(), changes);
        record(self.conn().await?.fetch_one(q).await)
    }

    #[tracing::instrument(level = "debug", name = "db.revoke_key", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn revoke_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        revocation: &Revocation,
    ) -> Result<KeyRecord> {
        let (nid, kind) = (nid_str(nid), kind_str(kind));
        let mut conn = self.conn().await?;
        let revoked = conn
            .fetch_one(sql::revoke(
                nid.clone(),
                kind,
                key_id.to_owned(),
                revocation.reason.to_i16(),
                revocation.description.clone(),
                micros(revocation.at),
            ))
            .await;
        if let Some(r) = optional_record(revoked)? {
            return Ok(r);
        }
        let exists = conn
            .fetch_one(sql::exists(nid, kind, key_id.to_owned()))
            .await
            .map_err(db_err)?;
        Err(if exists {
            StorageError::Conflict(ConflictKind::AlreadyRevoked)
        } else {
            StorageError::NotFound
        })
    }

    #[tracing::instrument(level = "debug", name = "db.rotate_key", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn rotate_key(
        &self,
        nid: Uuid,
        old_key_id: &str,
        new_key: &KeyRecord,
        revocation: &Revocation,
    ) -> Result<(KeyRecord, KeyRecord)> {
        let nid = nid_str(nid);
        // Rotation keeps the kind: the old key is looked up with the new key's kind.
        let kind = kind_str(new_key.kind);
        let new_row = Row::from_record(new_key)?;
        let revoke = sql::revoke_active(
            nid.clone(),
            kind,
            old_key_id.to_owned(),
            revocation.reason.to_i16(),
            revocation.description.clone(),
            micros(revocation.at),
        );
        let exists = sql::exists(nid, kind, old_key_id.to_owned());
        let mut pooled = self.conn().await?;
        let conn: &mut D::Conn = &mut pooled;
        let (new, old) = conn
            .transaction::<_, TxError, _>(async |c| {
                // Revoke first: the conditional UPDATE is the concurrency guard (a second
                // rotation finds nothing active), and on SQLite it takes the write lock at the
                // start of the transaction.
                let Some(old) = c.fetch_one(revoke).await.optional()? else {
                    let exists = c.fetch_one(exists).await?;
                    return Err(TxError::Storage(if exists {
                        StorageError::Conflict(ConflictKind::NotActive)
                    } else {
                        StorageError::NotFound
                    }));
                };
                // The old key's credits move to the new key as the revoke left them: a spend on
                // the old key after this commits finds it revoked, so none is counted twice.
                let new = c
                    .fetch_one(sql::insert(new_row.with_credits_of(&old)))
                    .await?;
                Ok((new, old))
            })
            .await?;
        Ok((new.into_record()?, old.into_record()?))
    }

    #[tracing::instrument(level = "debug", name = "db.delete_key", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn delete_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<KeyRecord> {
        let q = sql::delete(nid_str(nid), kind_str(kind), key_id.to_owned());
        record(self.conn().await?.fetch_one(q).await)
    }

    #[tracing::instrument(level = "debug", name = "db.touch_key", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn touch_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let q = sql::touch(nid_str(nid), kind_str(kind), key_id.to_owned(), micros(at));
        self.conn().await?.execute(q).await.map_err(db_err)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", name = "db.touch_keys", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn touch_keys(&self, touches: &[Touch]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        self.touch_rows(touches).await
    }

    #[tracing::instrument(level = "debug", name = "db.find_imported_by_hashes", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn find_imported_by_hashes(
        &self,
        nid: Uuid,
        hashes: &[[u8; 32]],
    ) -> Result<Option<KeyRecord>> {
        if hashes.is_empty() {
            return Ok(None);
        }
        let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
        let q = sql::by_hashes(nid_str(nid), hashes);
        let rows: Vec<(Row, Option<i64>)> =
            self.conn().await?.fetch_all(q).await.map_err(db_err)?;
        // The kind is checked here rather than in the query (see `sql::by_hashes`).
        rows.into_iter()
            .find(|(r, _)| r.kind == kind_str(KeyKind::Imported))
            .map(looked_up)
            .transpose()
    }

    #[tracing::instrument(level = "debug", name = "db.rehash_imported", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn rehash_imported(
        &self,
        nid: Uuid,
        key_id: &str,
        old_hash: &[u8; 32],
        new_hash: &[u8; 32],
        secret_id: &str,
    ) -> Result<Option<KeyRecord>> {
        let q = sql::rehash(
            nid_str(nid),
            kind_str(KeyKind::Imported),
            key_id.to_owned(),
            old_hash.to_vec(),
            new_hash.to_vec(),
            secret_id.to_owned(),
        );
        optional_record(self.conn().await?.fetch_one(q).await)
    }

    #[tracing::instrument(level = "debug", name = "db.count_active", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn count_active(&self, nid: Uuid, now: DateTime<Utc>) -> Result<u64> {
        let q = sql::count_active(nid_str(nid), micros(now));
        let n: i64 = self.conn().await?.fetch_one(q).await.map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    #[tracing::instrument(level = "debug", name = "db.add_invalidation", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn add_invalidation(&self, nid: Uuid, cache_key: &str, at: DateTime<Utc>) -> Result<()> {
        let q = sql::add_invalidation(nid_str(nid), cache_key.to_owned(), micros(at));
        self.conn().await?.execute(q).await.map_err(db_err)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", name = "db.pending_invalidations", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn pending_invalidations(&self, limit: usize) -> Result<Vec<Invalidation>> {
        let q = sql::pending_invalidations(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<(i64, String, String)> =
            self.conn().await?.fetch_all(q).await.map_err(db_err)?;
        rows.into_iter()
            .map(|(id, nid, cache_key)| {
                let nid = Uuid::parse_str(&nid)
                    .map_err(|e| StorageError::Internal(format!("cache_invalidations.nid: {e}")))?;
                Ok(Invalidation { id, nid, cache_key })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", name = "db.remove_invalidations", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn remove_invalidations(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let q = sql::remove_invalidations(ids.to_vec());
        self.conn().await?.execute(q).await.map_err(db_err)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", name = "db.count_imported_with_unknown_secret", skip_all, fields(db.system.name = D::SYSTEM))]
    async fn count_imported_with_unknown_secret(&self, known_secret_ids: &[String]) -> Result<u64> {
        let q = sql::count_unknown_secret(kind_str(KeyKind::Imported), known_secret_ids.to_vec());
        let n: i64 = self.conn().await?.fetch_one(q).await.map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn spend_credits(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        cost: i64,
        refill: Option<(RefillInterval, DateTime<Utc>)>,
    ) -> Result<CreditSpend> {
        crate::metering::spend_credits(self, nid, kind, key_id, cost, refill).await
    }

    async fn get_balance(&self, nid: Uuid, actor_id: &str) -> Result<Option<ActorBalance>> {
        crate::metering::get_balance(self, nid, actor_id).await
    }

    async fn set_quota(
        &self,
        nid: Uuid,
        actor_id: &str,
        quota_micros: i64,
        at: DateTime<Utc>,
    ) -> Result<ActorBalance> {
        crate::metering::set_quota(self, nid, actor_id, quota_micros, at).await
    }

    async fn top_up(
        &self,
        nid: Uuid,
        actor_id: &str,
        amount_micros: i64,
        at: DateTime<Utc>,
    ) -> Result<ActorBalance> {
        crate::metering::top_up(self, nid, actor_id, amount_micros, at).await
    }

    async fn ingest_usage(&self, record: &UsageRecord) -> Result<IngestOutcome> {
        crate::metering::ingest_usage(self, record).await
    }

    async fn usage_history(
        &self,
        nid: Uuid,
        actor_id: &str,
        limit: usize,
    ) -> Result<Vec<UsageRecord>> {
        crate::metering::usage_history(self, nid, actor_id, limit).await
    }
}
