//! The `Store` implementation, written once and expanded for both backends by `impl_store!`.
//!
//! diesel's query types depend on the backend (boxed queries name it, `RETURNING` support is
//! per backend), so fully generic functions would need long where-clauses; a macro over the two
//! concrete connection types keeps one body of query code with ordinary, checked diesel types.

use std::collections::HashSet;

use crate::error::{ConflictKind, Result, StorageError};
use crate::model::{BatchItemOutcome, KeyRecord};
use crate::row::Row;

/// Rows per `INSERT` statement: 1000 rows × 21 columns stays under SQLite's 32766 and
/// PostgreSQL's 65535 bind parameter limits.
pub(crate) const BATCH_CHUNK: usize = 1000;

/// Error type inside transactions: a diesel error (so `?` works on queries) or a domain outcome
/// (NotFound, NotActive) that must roll the transaction back.
pub(crate) enum TxError {
    Db(diesel::result::Error),
    Storage(StorageError),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

impl From<TxError> for StorageError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Db(e) => crate::conn::db_err(e),
            TxError::Storage(e) => e,
        }
    }
}

/// A batch, split into the rows worth sending and the items already known to be duplicates
/// within the batch (first occurrence wins, by key id, hash or request id).
pub(crate) struct BatchPlan {
    /// `Some(row)` for items to insert, `None` for in-batch duplicates; in input order.
    items: Vec<Option<Row>>,
}

impl BatchPlan {
    pub(crate) fn new(keys: &[KeyRecord]) -> Result<BatchPlan> {
        let mut ids = HashSet::new();
        let mut hashes = HashSet::new();
        let mut request_ids = HashSet::new();
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let row = Row::from_record(key)?;
            let id = (row.nid.clone(), row.key_id.clone());
            let hash = row.hash.as_ref().map(|h| (row.nid.clone(), h.clone()));
            let req = row
                .request_id
                .as_ref()
                .map(|r| (row.nid.clone(), row.kind.clone(), r.clone()));
            // Only an accepted item claims its id, hash and request id: a rejected one must not
            // shadow a later item that collides with it alone.
            let fresh = !ids.contains(&id)
                && hash.as_ref().is_none_or(|h| !hashes.contains(h))
                && req.as_ref().is_none_or(|r| !request_ids.contains(r));
            if fresh {
                ids.insert(id);
                hashes.extend(hash);
                request_ids.extend(req);
            }
            items.push(fresh.then_some(row));
        }
        Ok(BatchPlan { items })
    }

    pub(crate) fn rows(&self) -> Vec<&Row> {
        self.items.iter().flatten().collect()
    }

    /// `inserted` holds the `(nid, key_id)` pairs the database reported as inserted; every other
    /// item hit an existing row (`ON CONFLICT DO NOTHING`) or an earlier item of the batch.
    pub(crate) fn outcomes(
        self,
        inserted: &HashSet<(String, String)>,
    ) -> Result<Vec<BatchItemOutcome>> {
        self.items
            .into_iter()
            .map(|item| match item {
                Some(row) if inserted.contains(&(row.nid.clone(), row.key_id.clone())) => {
                    Ok(BatchItemOutcome::Inserted(row.into_record()?))
                }
                _ => Ok(BatchItemOutcome::Duplicate),
            })
            .collect()
    }

    /// Like `outcomes`, when only the first `sent` rows of `rows()` were sent (the quota had room
    /// for no more): the rows after them are `QuotaExceeded`.
    pub(crate) fn outcomes_within(
        self,
        inserted: &HashSet<(String, String)>,
        sent: usize,
    ) -> Result<Vec<BatchItemOutcome>> {
        let mut seen = 0usize;
        self.items
            .into_iter()
            .map(|item| match item {
                Some(row) => {
                    seen += 1;
                    if seen > sent {
                        Ok(BatchItemOutcome::QuotaExceeded)
                    } else if inserted.contains(&(row.nid.clone(), row.key_id.clone())) {
                        Ok(BatchItemOutcome::Inserted(row.into_record()?))
                    } else {
                        Ok(BatchItemOutcome::Duplicate)
                    }
                }
                None => Ok(BatchItemOutcome::Duplicate),
            })
            .collect()
    }
}

/// How many more keys fit under `max` when `current` are active.
pub(crate) fn room(max: u64, current: i64) -> usize {
    let current = u64::try_from(current).unwrap_or(0);
    usize::try_from(max.saturating_sub(current)).unwrap_or(usize::MAX)
}

/// The quota error for a network holding `current` active keys.
pub(crate) fn quota_exceeded(max: u64, current: i64) -> StorageError {
    StorageError::QuotaExceeded {
        limit: max,
        current: u64::try_from(current).unwrap_or(0),
    }
}

/// The error for a unique violation on key id or hash (or a request id whose row vanished).
pub(crate) fn duplicate() -> StorageError {
    StorageError::Conflict(ConflictKind::Duplicate)
}

/// `WHERE nid = ? AND key_id = ? AND kind = ?` — the primary key plus the kind check.
macro_rules! by_id {
    ($nid:expr, $kind:expr, $key_id:expr) => {
        api_keys::table
            .filter(api_keys::nid.eq($nid))
            .filter(api_keys::key_id.eq($key_id))
            .filter(api_keys::kind.eq($kind))
    };
}

/// Stored-active and unexpired at `$now_us` (unix microseconds).
macro_rules! active_at {
    ($now_us:expr) => {
        api_keys::status.eq(STATUS_ACTIVE).and(
            api_keys::expire_time
                .is_null()
                .or(api_keys::expire_time.gt($now_us)),
        )
    };
}

/// `SELECT count(*)` of a network's keys active at `$now` (unix microseconds), for quotas.
macro_rules! count_active {
    ($nid:expr, $now_us:expr) => {
        api_keys::table
            .filter(api_keys::nid.eq($nid))
            .filter(active_at!($now_us))
            .count()
    };
}

/// One multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING nid, key_id`: rows not returned hit an
/// existing key id, hash or request id. Shared by both backends' executors below.
macro_rules! batch_insert {
    ($chunk:expr) => {
        diesel::insert_into(api_keys::table)
            .values($chunk)
            .on_conflict_do_nothing()
            .returning((api_keys::nid, api_keys::key_id))
    };
}

macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl crate::store::Store for $store {
            fn pool_status(&self) -> Option<crate::store::PoolStatus> {
                Some(<$store>::pool_status(self))
            }

            async fn ping(&self) -> Result<()> {
                let mut conn = self.conn().await?;
                // Touches the keys table, so a lock that blocks every key read (say, an
                // `ACCESS EXCLUSIVE` lock held by a migration) fails readiness too.
                conn.batch_execute("SELECT 1 FROM api_keys LIMIT 1")
                    .await
                    .map_err(db_err)
            }

            async fn insert_key(&self, key: &KeyRecord) -> Result<InsertOutcome> {
                let row = Row::from_record(key)?;
                // Insert first and look for the request id only on conflict: the common path is one
                // statement, and a concurrent twin request loses the race cleanly at the unique index.
                let res = {
                    let mut conn = self.conn().await?;
                    diesel::insert_into(api_keys::table)
                        .values(&row)
                        .returning(Row::as_returning())
                        .get_result::<Row>(&mut conn)
                        .await
                };
                match res {
                    Ok(r) => Ok(InsertOutcome::Inserted(r.into_record()?)),
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                        self.existing_twin(&row).await
                    }
                    Err(e) => Err(db_err(e)),
                }
            }

            async fn insert_key_within(
                &self,
                key: &KeyRecord,
                quota: &Quota,
            ) -> Result<InsertOutcome> {
                let row = Row::from_record(key)?;
                match self.insert_one_within(row.clone(), quota).await {
                    Ok(Ok(r)) => Ok(InsertOutcome::Inserted(r.into_record()?)),
                    Ok(Err(current)) => Err(quota_exceeded(quota.max, current)),
                    Err(TxError::Db(DieselError::DatabaseError(
                        DatabaseErrorKind::UniqueViolation,
                        _,
                    ))) => self.existing_twin(&row).await,
                    Err(e) => Err(e.into()),
                }
            }

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

            async fn get_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<KeyRecord> {
                let mut conn = self.conn().await?;
                by_id!(nid_str(nid), kind_str(kind), key_id)
                    .select(Row::as_select())
                    .get_result::<Row>(&mut conn)
                    .await
                    .map_err(db_err)?
                    .into_record()
            }

            async fn list_keys(
                &self,
                nid: Uuid,
                kind: KeyKind,
                query: &ListQuery,
            ) -> Result<Vec<KeyRecord>> {
                if query.limit == 0 {
                    return Ok(Vec::new());
                }
                let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
                let now = micros(query.now);
                let mut q = api_keys::table
                    .filter(api_keys::nid.eq(nid_str(nid)))
                    .filter(api_keys::kind.eq(kind_str(kind)))
                    .select(Row::as_select())
                    .order(api_keys::key_id.desc())
                    .limit(limit)
                    .into_boxed::<$db>();
                if let Some(actor) = &query.actor_id {
                    q = q.filter(api_keys::actor_id.eq(actor));
                }
                if let Some(after) = &query.after {
                    q = q.filter(api_keys::key_id.lt(after));
                }
                // The status filter works on the status a reader sees at `now`, so EXPIRED keys are
                // stored-active rows whose expiry has passed.
                q = match query.status {
                    None => q,
                    Some(KeyStatus::Active) => q.filter(active_at!(now)),
                    Some(KeyStatus::Expired) => q
                        .filter(api_keys::status.eq(STATUS_ACTIVE))
                        .filter(api_keys::expire_time.le(now)),
                    Some(KeyStatus::Revoked) => q.filter(api_keys::status.eq(STATUS_REVOKED)),
                };
                let mut conn = self.conn().await?;
                let rows = q.load::<Row>(&mut conn).await.map_err(db_err)?;
                rows.into_iter().map(Row::into_record).collect()
            }

            async fn update_key(
                &self,
                nid: Uuid,
                kind: KeyKind,
                key_id: &str,
                patch: &KeyPatch,
                now: DateTime<Utc>,
            ) -> Result<KeyRecord> {
                let changes = PatchRow::new(patch, now)?;
                let mut conn = self.conn().await?;
                diesel::update(by_id!(nid_str(nid), kind_str(kind), key_id))
                    .set(&changes)
                    .returning(Row::as_returning())
                    .get_result::<Row>(&mut conn)
                    .await
                    .map_err(db_err)?
                    .into_record()
            }

            async fn revoke_key(
                &self,
                nid: Uuid,
                kind: KeyKind,
                key_id: &str,
                revocation: &Revocation,
            ) -> Result<KeyRecord> {
                let nid = nid_str(nid);
                let kind = kind_str(kind);
                let mut conn = self.conn().await?;
                // The status condition makes the check-and-set atomic: of two concurrent revokes,
                // the second finds no active row.
                let revoked = diesel::update(
                    by_id!(&nid, kind, key_id).filter(api_keys::status.eq(STATUS_ACTIVE)),
                )
                .set((
                    api_keys::status.eq(STATUS_REVOKED),
                    api_keys::revocation_reason.eq(Some(revocation.reason.to_i16())),
                    api_keys::revocation_description.eq(revocation.description.as_deref()),
                    api_keys::update_time.eq(micros(revocation.at)),
                ))
                .returning(Row::as_returning())
                .get_result::<Row>(&mut conn)
                .await
                .optional()
                .map_err(db_err)?;
                match revoked {
                    Some(r) => r.into_record(),
                    None => {
                        let exists =
                            diesel::select(diesel::dsl::exists(by_id!(&nid, kind, key_id)))
                                .get_result::<bool>(&mut conn)
                                .await
                                .map_err(db_err)?;
                        Err(if exists {
                            StorageError::Conflict(ConflictKind::AlreadyRevoked)
                        } else {
                            StorageError::NotFound
                        })
                    }
                }
            }

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
                let at = micros(revocation.at);
                let mut conn = self.conn().await?;
                let (new, old) = conn
                    .transaction::<_, TxError, _>(async |c| {
                        // Revoke first: the conditional UPDATE is the concurrency guard (a second
                        // rotation finds nothing active), and on SQLite it takes the write lock at
                        // the start of the transaction.
                        let old =
                            diesel::update(by_id!(&nid, kind, old_key_id).filter(active_at!(at)))
                                .set((
                                    api_keys::status.eq(STATUS_REVOKED),
                                    api_keys::revocation_reason
                                        .eq(Some(revocation.reason.to_i16())),
                                    api_keys::revocation_description
                                        .eq(revocation.description.as_deref()),
                                    api_keys::update_time.eq(at),
                                ))
                                .returning(Row::as_returning())
                                .get_result::<Row>(c)
                                .await
                                .optional()?;
                        let Some(old) = old else {
                            let exists =
                                diesel::select(diesel::dsl::exists(by_id!(&nid, kind, old_key_id)))
                                    .get_result::<bool>(c)
                                    .await?;
                            return Err(TxError::Storage(if exists {
                                StorageError::Conflict(ConflictKind::NotActive)
                            } else {
                                StorageError::NotFound
                            }));
                        };
                        let new = diesel::insert_into(api_keys::table)
                            .values(&new_row)
                            .returning(Row::as_returning())
                            .get_result::<Row>(c)
                            .await?;
                        Ok((new, old))
                    })
                    .await?;
                Ok((new.into_record()?, old.into_record()?))
            }

            async fn delete_key(
                &self,
                nid: Uuid,
                kind: KeyKind,
                key_id: &str,
            ) -> Result<KeyRecord> {
                let mut conn = self.conn().await?;
                diesel::delete(by_id!(nid_str(nid), kind_str(kind), key_id))
                    .returning(Row::as_returning())
                    .get_result::<Row>(&mut conn)
                    .await
                    .map_err(db_err)?
                    .into_record()
            }

            async fn touch_key(
                &self,
                nid: Uuid,
                kind: KeyKind,
                key_id: &str,
                at: DateTime<Utc>,
            ) -> Result<()> {
                let at = micros(at);
                let mut conn = self.conn().await?;
                // Only ever moves forward, so batched last-used flushes arriving out of order
                // cannot set an older time.
                diesel::update(
                    by_id!(nid_str(nid), kind_str(kind), key_id).filter(
                        api_keys::last_used_time
                            .is_null()
                            .or(api_keys::last_used_time.lt(at)),
                    ),
                )
                .set(api_keys::last_used_time.eq(at))
                .execute(&mut conn)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn find_imported_by_hashes(
                &self,
                nid: Uuid,
                hashes: &[[u8; 32]],
            ) -> Result<Option<KeyRecord>> {
                if hashes.is_empty() {
                    return Ok(None);
                }
                let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
                let mut conn = self.conn().await?;
                // Only `(nid, hash)` in the WHERE clause: every other index also starts with
                // `nid`, and with `kind` in the clause a planner without statistics (a fresh
                // import, autovacuum off) picked `(nid, kind, …)` and filtered every imported row
                // (324 ms a lookup at a million keys). Issued keys have no hash, so checking the
                // kind on the row found is the same filter.
                let rows = api_keys::table
                    .filter(api_keys::nid.eq(nid_str(nid)))
                    .filter(api_keys::hash.eq_any(hashes))
                    .select(Row::as_select())
                    .limit(1)
                    .load::<Row>(&mut conn)
                    .await
                    .map_err(db_err)?;
                rows.into_iter()
                    .find(|r| r.kind == kind_str(KeyKind::Imported))
                    .map(Row::into_record)
                    .transpose()
            }

            async fn rehash_imported(
                &self,
                nid: Uuid,
                key_id: &str,
                old_hash: &[u8; 32],
                new_hash: &[u8; 32],
                secret_id: &str,
            ) -> Result<Option<KeyRecord>> {
                let mut conn = self.conn().await?;
                diesel::update(
                    by_id!(nid_str(nid), kind_str(KeyKind::Imported), key_id)
                        .filter(api_keys::hash.eq(old_hash.as_slice())),
                )
                .set((
                    api_keys::hash.eq(new_hash.as_slice()),
                    api_keys::hash_secret_id.eq(secret_id),
                ))
                .returning(Row::as_returning())
                .get_result::<Row>(&mut conn)
                .await
                .optional()
                .map_err(db_err)?
                .map(Row::into_record)
                .transpose()
            }

            async fn add_invalidation(
                &self,
                nid: Uuid,
                cache_key: &str,
                at: DateTime<Utc>,
            ) -> Result<()> {
                let mut conn = self.conn().await?;
                diesel::insert_into(cache_invalidations::table)
                    .values((
                        cache_invalidations::nid.eq(nid_str(nid)),
                        cache_invalidations::cache_key.eq(cache_key),
                        cache_invalidations::create_time.eq(micros(at)),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn pending_invalidations(&self, limit: usize) -> Result<Vec<Invalidation>> {
                let mut conn = self.conn().await?;
                let rows: Vec<(i64, String, String)> = cache_invalidations::table
                    .select((
                        cache_invalidations::id,
                        cache_invalidations::nid,
                        cache_invalidations::cache_key,
                    ))
                    .order(cache_invalidations::id.asc())
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                    .load(&mut conn)
                    .await
                    .map_err(db_err)?;
                rows.into_iter()
                    .map(|(id, nid, cache_key)| {
                        let nid = Uuid::parse_str(&nid).map_err(|e| {
                            StorageError::Internal(format!("cache_invalidations.nid: {e}"))
                        })?;
                        Ok(Invalidation { id, nid, cache_key })
                    })
                    .collect()
            }

            async fn remove_invalidations(&self, ids: &[i64]) -> Result<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut conn = self.conn().await?;
                diesel::delete(
                    cache_invalidations::table.filter(cache_invalidations::id.eq_any(ids.to_vec())),
                )
                .execute(&mut conn)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn count_active(&self, nid: Uuid, now: DateTime<Utc>) -> Result<u64> {
                let mut conn = self.conn().await?;
                let n: i64 = api_keys::table
                    .filter(api_keys::nid.eq(nid_str(nid)))
                    .filter(active_at!(micros(now)))
                    .count()
                    .get_result(&mut conn)
                    .await
                    .map_err(db_err)?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn count_imported_with_unknown_secret(
                &self,
                known_secret_ids: &[String],
            ) -> Result<u64> {
                let mut conn = self.conn().await?;
                let n: i64 = api_keys::table
                    .filter(api_keys::kind.eq(kind_str(KeyKind::Imported)))
                    .filter(
                        api_keys::hash_secret_id
                            .is_null()
                            .or(api_keys::hash_secret_id.ne_all(known_secret_ids.to_vec())),
                    )
                    .count()
                    .get_result(&mut conn)
                    .await
                    .map_err(db_err)?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }

        impl $store {
            /// After a unique violation: the row of a twin request with the same request id, if
            /// that is what collided.
            async fn existing_twin(&self, row: &Row) -> Result<InsertOutcome> {
                let Some(request_id) = &row.request_id else {
                    return Err(duplicate());
                };
                let mut conn = self.conn().await?;
                let existing = api_keys::table
                    .filter(api_keys::nid.eq(&row.nid))
                    .filter(api_keys::kind.eq(&row.kind))
                    .filter(api_keys::request_id.eq(request_id))
                    .select(Row::as_select())
                    .get_result::<Row>(&mut conn)
                    .await
                    .optional()
                    .map_err(db_err)?;
                match existing {
                    Some(r) => Ok(InsertOutcome::Existing(r.into_record()?)),
                    None => Err(duplicate()),
                }
            }
        }
    };
}

mod expand {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use chrono::{DateTime, Utc};
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    use diesel::{
        BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper,
    };
    use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
    use uuid::Uuid;

    use super::{BATCH_CHUNK, BatchPlan, TxError, duplicate, quota_exceeded, room};
    use crate::conn::{PgStore, SqliteStore, db_err};
    use crate::error::{ConflictKind, Result, StorageError};
    use crate::model::{
        BatchItemOutcome, InsertOutcome, Invalidation, KeyKind, KeyPatch, KeyRecord, KeyStatus,
        ListQuery, Quota, Revocation,
    };
    use crate::row::{
        PatchRow, Row, STATUS_ACTIVE, STATUS_REVOKED, api_keys, cache_invalidations, kind_str,
        micros, nid_str,
    };

    impl PgStore {
        /// Insert batch rows, `BATCH_CHUNK` per statement, in one transaction.
        async fn insert_rows(&self, rows: Vec<Row>) -> Result<HashSet<(String, String)>> {
            let mut conn = self.conn().await?;
            let inserted = conn
                .transaction::<_, TxError, _>(async |c| {
                    let mut inserted = HashSet::new();
                    for chunk in rows.chunks(BATCH_CHUNK) {
                        let ids: Vec<(String, String)> =
                            batch_insert!(chunk).get_results(c).await?;
                        inserted.extend(ids);
                    }
                    Ok(inserted)
                })
                .await?;
            Ok(inserted)
        }

        /// Serialises quota-checked inserts into one network until the transaction ends, then
        /// counts its active keys. READ COMMITTED takes a fresh snapshot per statement, so the
        /// count sees every insert committed by the previous holder of the lock.
        async fn lock_and_count(
            c: &mut diesel_async::AsyncPgConnection,
            nid: &str,
            now: DateTime<Utc>,
        ) -> diesel::QueryResult<i64> {
            // Two-key form with a fixed class id, so the lock cannot collide with other users of
            // single-key advisory locks on the same database.
            diesel::sql_query("SELECT pg_advisory_xact_lock(7243, hashtext($1))")
                .bind::<diesel::sql_types::Text, _>(nid)
                .execute(c)
                .await?;
            count_active!(nid, micros(now)).get_result(c).await
        }

        /// Insert one row if the quota has room: `Ok(Err(current))` when it is full.
        async fn insert_one_within(
            &self,
            row: Row,
            quota: &Quota,
        ) -> std::result::Result<std::result::Result<Row, i64>, TxError> {
            let mut conn = self.conn().await.map_err(TxError::Storage)?;
            conn.transaction::<_, TxError, _>(async |c| {
                let current = Self::lock_and_count(c, &row.nid, quota.now).await?;
                if room(quota.max, current) == 0 {
                    return Ok(Err(current));
                }
                let r = diesel::insert_into(api_keys::table)
                    .values(&row)
                    .returning(Row::as_returning())
                    .get_result::<Row>(c)
                    .await?;
                Ok(Ok(r))
            })
            .await
        }

        /// Insert as many of `rows` (in order) as the quota has room for; returns the inserted
        /// ids and how many rows were sent.
        async fn insert_rows_within(
            &self,
            nid: String,
            rows: Vec<Row>,
            quota: &Quota,
        ) -> Result<(HashSet<(String, String)>, usize)> {
            let mut conn = self.conn().await?;
            let out = conn
                .transaction::<_, TxError, _>(async |c| {
                    let current = Self::lock_and_count(c, &nid, quota.now).await?;
                    let sent = room(quota.max, current).min(rows.len());
                    let mut inserted = HashSet::new();
                    for chunk in rows[..sent].chunks(BATCH_CHUNK) {
                        let ids: Vec<(String, String)> =
                            batch_insert!(chunk).get_results(c).await?;
                        inserted.extend(ids);
                    }
                    Ok((inserted, sent))
                })
                .await?;
            Ok(out)
        }
    }

    /// Background `ANALYZE` after batch imports on PostgreSQL: at most one at a time per process
    /// and one per [`ANALYZE_GAP`], so a long import is analysed as it goes (the newest rows of
    /// the last gap may wait for the next import, autovacuum or `migrate up`).
    static ANALYZE_RUNNING: AtomicBool = AtomicBool::new(false);
    static ANALYZE_LAST: Mutex<Option<Instant>> = Mutex::new(None);
    const ANALYZE_GAP: Duration = Duration::from_secs(10);

    impl PgStore {
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
    }

    impl SqliteStore {
        async fn after_bulk_insert(&self) {}

        /// Same statement as on PostgreSQL, but run on the synchronous connection: diesel implements
        /// multi-row inserts for SQLite only on that path, not through diesel-async's generic one.
        /// `BEGIN IMMEDIATE` takes the write lock up front (no SQLITE_BUSY on a lock upgrade).
        async fn insert_rows(&self, rows: Vec<Row>) -> Result<HashSet<(String, String)>> {
            let mut conn = self.conn().await?;
            conn.spawn_blocking(move |c| {
                c.immediate_transaction(|c| {
                    let mut inserted = HashSet::new();
                    for chunk in rows.chunks(BATCH_CHUNK) {
                        let ids: Vec<(String, String)> =
                            diesel::RunQueryDsl::get_results(batch_insert!(chunk), c)?;
                        inserted.extend(ids);
                    }
                    Ok(inserted)
                })
            })
            .await
            .map_err(db_err)
        }

        /// Insert one row if the quota has room: `Ok(Err(current))` when it is full.
        /// `BEGIN IMMEDIATE` takes the database's write lock before counting, which serialises
        /// quota-checked inserts (and every other writer).
        async fn insert_one_within(
            &self,
            row: Row,
            quota: &Quota,
        ) -> std::result::Result<std::result::Result<Row, i64>, TxError> {
            let mut conn = self.conn().await.map_err(TxError::Storage)?;
            let (max, now) = (quota.max, micros(quota.now));
            conn.spawn_blocking(move |c| {
                c.immediate_transaction(|c| {
                    let current: i64 =
                        diesel::RunQueryDsl::get_result(count_active!(&row.nid, now), c)?;
                    if room(max, current) == 0 {
                        return Ok(Err(current));
                    }
                    let r: Row = diesel::RunQueryDsl::get_result(
                        diesel::insert_into(api_keys::table)
                            .values(&row)
                            .returning(Row::as_returning()),
                        c,
                    )?;
                    Ok(Ok(r))
                })
            })
            .await
            .map_err(TxError::Db)
        }

        /// Insert as many of `rows` (in order) as the quota has room for, under `BEGIN IMMEDIATE`.
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
                    let current: i64 =
                        diesel::RunQueryDsl::get_result(count_active!(&nid, now), c)?;
                    let sent = room(max, current).min(rows.len());
                    let mut inserted = HashSet::new();
                    for chunk in rows[..sent].chunks(BATCH_CHUNK) {
                        let ids: Vec<(String, String)> =
                            diesel::RunQueryDsl::get_results(batch_insert!(chunk), c)?;
                        inserted.extend(ids);
                    }
                    Ok((inserted, sent))
                })
            })
            .await
            .map_err(db_err)
        }
    }

    impl_store!(PgStore, diesel::pg::Pg);
    impl_store!(SqliteStore, diesel::sqlite::Sqlite);
}
