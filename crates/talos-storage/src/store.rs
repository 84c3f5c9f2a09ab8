use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::model::{
    BatchItemOutcome, InsertOutcome, Invalidation, KeyKind, KeyPatch, KeyRecord, ListQuery, Quota,
    Revocation,
};

/// The storage interface: everything the service needs, in domain types, scoped by network id.
/// Connection pool figures, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections not checked out.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Pool figures for metrics; `None` for stores without a pool (test fakes).
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Readiness: one cheap round trip.
    async fn ping(&self) -> Result<()>;

    /// Insert a key. With `request_id` set and a row with the same `(nid, kind, request_id)`
    /// present, returns `Existing` with that row. Any other unique violation (key id, hash):
    /// `Conflict(Duplicate)`.
    async fn insert_key(&self, key: &KeyRecord) -> Result<InsertOutcome>;

    /// Insert up to 1000 imported keys in a handful of statements. Outcomes are in input order.
    /// Duplicates (of existing rows or within the batch: the first wins) are per-item outcomes.
    async fn insert_keys_batch(&self, keys: &[KeyRecord]) -> Result<Vec<BatchItemOutcome>>;

    /// `insert_key`, but only if the key's network holds fewer than `quota.max` keys active at
    /// `quota.now`; else `QuotaExceeded`. The count and the insert are one atomic step per network.
    ///
    /// The default (count, then insert) is not atomic and exists for test fakes; real stores
    /// override it.
    async fn insert_key_within(&self, key: &KeyRecord, quota: &Quota) -> Result<InsertOutcome> {
        let current = self.count_active(key.nid, quota.now).await?;
        if current >= quota.max {
            return Err(crate::StorageError::QuotaExceeded {
                limit: quota.max,
                current,
            });
        }
        self.insert_key(key).await
    }

    /// `insert_keys_batch` (all keys of one network), but the items that do not fit in the
    /// quota, in input order, are `QuotaExceeded` and not inserted. Atomic like `insert_key_within`.
    async fn insert_keys_batch_within(
        &self,
        keys: &[KeyRecord],
        quota: &Quota,
    ) -> Result<Vec<BatchItemOutcome>> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        let current = self.count_active(first.nid, quota.now).await?;
        let room = usize::try_from(quota.max.saturating_sub(current)).unwrap_or(usize::MAX);
        let fit = room.min(keys.len());
        let mut out = self.insert_keys_batch(&keys[..fit]).await?;
        out.resize(keys.len(), BatchItemOutcome::QuotaExceeded);
        Ok(out)
    }

    async fn get_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<KeyRecord>;

    /// Keys of one kind ordered by `key_id` descending, filtered as `query` says.
    async fn list_keys(
        &self,
        nid: Uuid,
        kind: KeyKind,
        query: &ListQuery,
    ) -> Result<Vec<KeyRecord>>;

    /// Apply `patch`, bump `update_time` to `now`, return the new row. `NotFound` if missing.
    async fn update_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        patch: &KeyPatch,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord>;

    /// Revoke an active key. Missing: `NotFound`; already revoked: `Conflict(AlreadyRevoked)`.
    /// Of two concurrent revokes exactly one succeeds. Never changes `expire_time`.
    async fn revoke_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        revocation: &Revocation,
    ) -> Result<KeyRecord>;

    /// In one transaction: revoke `old_key_id` (must be stored-active and unexpired at
    /// `revocation.at`, else `Conflict(NotActive)`; missing: `NotFound`) and insert `new_key`.
    /// Of concurrent rotations of one key exactly one succeeds. Returns `(new, old)`.
    async fn rotate_key(
        &self,
        nid: Uuid,
        old_key_id: &str,
        new_key: &KeyRecord,
        revocation: &Revocation,
    ) -> Result<(KeyRecord, KeyRecord)>;

    /// Hard delete; returns the deleted row as it was at the delete (so the caller evicts the
    /// cache entry of the row's current hash, even if a re-hash committed since it last read it).
    /// `NotFound` if missing.
    async fn delete_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<KeyRecord>;

    /// Set `last_used_time` (best effort; a missing row is not an error).
    async fn touch_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Find an imported key whose hash is any of `hashes` (one indexed query). At most one row
    /// can match because hashes are unique per network.
    async fn find_imported_by_hashes(
        &self,
        nid: Uuid,
        hashes: &[[u8; 32]],
    ) -> Result<Option<KeyRecord>>;

    /// Replace an imported key's hash (re-hash under the current secret). Only applies if the
    /// stored hash still equals `old_hash`; returns the row as it is after the change (its status
    /// may differ from the row the caller read before), `None` if no row changed.
    async fn rehash_imported(
        &self,
        nid: Uuid,
        key_id: &str,
        old_hash: &[u8; 32],
        new_hash: &[u8; 32],
        secret_id: &str,
    ) -> Result<Option<KeyRecord>>;

    /// Keys of both kinds that are stored-active and unexpired at `now`, for quotas.
    async fn count_active(&self, nid: Uuid, now: DateTime<Utc>) -> Result<u64>;

    /// Records a cache eviction that could not be delivered (the shared cache was unreachable).
    async fn add_invalidation(&self, nid: Uuid, cache_key: &str, at: DateTime<Utc>) -> Result<()>;

    /// The oldest recorded evictions, at most `limit`.
    async fn pending_invalidations(&self, limit: usize) -> Result<Vec<Invalidation>>;

    /// Forgets evictions that were delivered.
    async fn remove_invalidations(&self, ids: &[i64]) -> Result<()>;

    /// Count imported rows whose `secret_id` is not in `known_secret_ids` (startup report).
    async fn count_imported_with_unknown_secret(&self, known_secret_ids: &[String]) -> Result<u64>;
}
