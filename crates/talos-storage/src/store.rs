use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::model::{
    ActorBalance, BatchItemOutcome, CreditSpend, IngestOutcome, InsertOutcome, Invalidation,
    KeyKind, KeyPatch, KeyRecord, ListQuery, Quota, RefillInterval, Revocation, Touch, UsageRecord,
};

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

/// The storage interface: everything the service needs, in domain types, scoped by network id.
///
/// This trait is the one declaration of the store's operations. The backends implement it once,
/// generically (`ops.rs`); wrappers implement it through [`Layered`](crate::Layered).
///
/// # Not found
///
/// One convention for a key that does not exist:
/// - A **lookup** (`get_key`, `find_imported_by_hashes`) that matches no row returns `Ok(None)`:
///   absence is an answer, not a failure.
/// - An operation **on one named key** (`update_key`, `revoke_key`, `rotate_key`, `delete_key`)
///   fails with [`StorageError::NotFound`](crate::StorageError::NotFound) when the key is
///   missing, since it could not do what was asked. No other operation returns `NotFound`.
/// - Writes that are conditional or best effort say so: `rehash_imported` returns `Ok(None)` when
///   no row changed, `touch_key` ignores a missing row, `spend_credits` answers what it found.
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

    /// The key `key_id` of kind `kind`; `None` if there is none.
    async fn get_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<Option<KeyRecord>>;

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

    /// Sets `last_used_time` of several keys (one transaction where the backend has them); like
    /// [`Store::touch_key`], only ever forward, and a missing row is not an error.
    async fn touch_keys(&self, touches: &[Touch]) -> Result<()> {
        for t in touches {
            self.touch_key(t.nid, t.kind, &t.key_id, t.at).await?;
        }
        Ok(())
    }

    /// Find an imported key whose hash is any of `hashes` (one indexed query); `None` if there is
    /// none. At most one row can match because hashes are unique per network.
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

    // ---- metering (docs/metering.md)

    /// Spends `cost` (> 0) of an active key's credits if at least `cost` remain: one conditional
    /// update, so no interleaving of concurrent spends, on any number of nodes, overspends. With
    /// `refill` (the interval the caller saw and its latest boundary), a refill due at that
    /// boundary is applied first, at most once per boundary. Answers what it found; `Inactive`
    /// when the key is missing or revoked.
    async fn spend_credits(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        cost: i64,
        refill: Option<(RefillInterval, DateTime<Utc>)>,
    ) -> Result<CreditSpend>;

    /// An actor's balance; `None` when the actor has none.
    async fn get_balance(&self, nid: Uuid, actor_id: &str) -> Result<Option<ActorBalance>>;

    /// Sets an actor's quota. A new balance starts with `remaining = quota`; an existing one's
    /// remaining balance moves by the change of quota (what was spent stays spent).
    async fn set_quota(
        &self,
        nid: Uuid,
        actor_id: &str,
        quota_micros: i64,
        at: DateTime<Utc>,
    ) -> Result<ActorBalance>;

    /// Adds `amount_micros` to an actor's remaining balance (a new balance has no quota).
    async fn top_up(
        &self,
        nid: Uuid,
        actor_id: &str,
        amount_micros: i64,
        at: DateTime<Utc>,
    ) -> Result<ActorBalance>;

    /// Records a usage event and debits its cost from the actor's balance (when it has one), in
    /// one transaction. When the event's request id was taken already in its network, nothing is
    /// recorded or debited and `accepted` is false: of concurrent twins exactly one is accepted.
    async fn ingest_usage(&self, record: &UsageRecord) -> Result<IngestOutcome>;

    /// An actor's usage records, newest first, at most `limit`.
    async fn usage_history(
        &self,
        nid: Uuid,
        actor_id: &str,
        limit: usize,
    ) -> Result<Vec<UsageRecord>>;
}
