//! Wrapping a store without restating its interface: a [`Layer`] runs around every operation of
//! an inner store, and [`Layered`] is the one delegating `Store` impl that calls it.
//!
//! The SQLite backend uses this to run each operation on its own task ([`Detach`]); tests use it
//! to count, delay or stall storage calls. Rust has no delegation, so `Layered` spells out the
//! method list once; a layer sees each call as a method name and a future that already owns its
//! arguments.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Result, StorageError};
use crate::model::{
    ActorBalance, BatchItemOutcome, CreditSpend, IngestOutcome, InsertOutcome, Invalidation,
    KeyKind, KeyPatch, KeyRecord, ListQuery, Quota, RefillInterval, Revocation, Touch, UsageRecord,
};
use crate::store::{PoolStatus, Store};

/// Runs around every operation of a [`Layered`] store.
pub trait Layer: Send + Sync + 'static {
    /// Runs `op`, the inner store's `method` (the `Store` method's name, e.g. `"get_key"`) bound
    /// to its arguments, and returns its result. `op` is `'static`, so a layer may also spawn it,
    /// delay it, or never poll it.
    fn around<T, F>(&self, method: &'static str, op: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static;
}

impl<L: Layer> Layer for Arc<L> {
    fn around<T, F>(&self, method: &'static str, op: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        L::around(self, method, op)
    }
}

/// A store that passes every operation to `inner` through `layer`. Arguments are copied into
/// each operation's future (so that it can outlive the call), which costs an allocation per
/// borrowed argument.
pub struct Layered<L, S: ?Sized = dyn Store> {
    inner: Arc<S>,
    layer: L,
}

impl<L, S: ?Sized> Layered<L, S> {
    pub fn new(inner: Arc<S>, layer: L) -> Self {
        Layered { inner, layer }
    }

    pub fn layer(&self) -> &L {
        &self.layer
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

#[async_trait]
impl<L: Layer, S: Store + ?Sized> Store for Layered<L, S> {
    fn pool_status(&self) -> Option<PoolStatus> {
        self.inner.pool_status()
    }

    async fn ping(&self) -> Result<()> {
        let s = Arc::clone(&self.inner);
        self.layer
            .around("ping", async move { s.ping().await })
            .await
    }

    async fn insert_key(&self, key: &KeyRecord) -> Result<InsertOutcome> {
        let (s, key) = (Arc::clone(&self.inner), key.clone());
        let op = async move { s.insert_key(&key).await };
        self.layer.around("insert_key", op).await
    }

    async fn insert_keys_batch(&self, keys: &[KeyRecord]) -> Result<Vec<BatchItemOutcome>> {
        let (s, keys) = (Arc::clone(&self.inner), keys.to_vec());
        let op = async move { s.insert_keys_batch(&keys).await };
        self.layer.around("insert_keys_batch", op).await
    }

    async fn insert_key_within(&self, key: &KeyRecord, quota: &Quota) -> Result<InsertOutcome> {
        let (s, key, quota) = (Arc::clone(&self.inner), key.clone(), *quota);
        let op = async move { s.insert_key_within(&key, &quota).await };
        self.layer.around("insert_key_within", op).await
    }

    async fn insert_keys_batch_within(
        &self,
        keys: &[KeyRecord],
        quota: &Quota,
    ) -> Result<Vec<BatchItemOutcome>> {
        let (s, keys, quota) = (Arc::clone(&self.inner), keys.to_vec(), *quota);
        let op = async move { s.insert_keys_batch_within(&keys, &quota).await };
        self.layer.around("insert_keys_batch_within", op).await
    }

    async fn get_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<Option<KeyRecord>> {
        let (s, key_id) = (Arc::clone(&self.inner), key_id.to_owned());
        let op = async move { s.get_key(nid, kind, &key_id).await };
        self.layer.around("get_key", op).await
    }

    async fn list_keys(
        &self,
        nid: Uuid,
        kind: KeyKind,
        query: &ListQuery,
    ) -> Result<Vec<KeyRecord>> {
        let (s, query) = (Arc::clone(&self.inner), query.clone());
        let op = async move { s.list_keys(nid, kind, &query).await };
        self.layer.around("list_keys", op).await
    }

    async fn update_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        patch: &KeyPatch,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord> {
        let (s, key_id, patch) = (Arc::clone(&self.inner), key_id.to_owned(), patch.clone());
        let op = async move { s.update_key(nid, kind, &key_id, &patch, now).await };
        self.layer.around("update_key", op).await
    }

    async fn revoke_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        revocation: &Revocation,
    ) -> Result<KeyRecord> {
        let (s, key_id, revocation) = (
            Arc::clone(&self.inner),
            key_id.to_owned(),
            revocation.clone(),
        );
        let op = async move { s.revoke_key(nid, kind, &key_id, &revocation).await };
        self.layer.around("revoke_key", op).await
    }

    async fn rotate_key(
        &self,
        nid: Uuid,
        old_key_id: &str,
        new_key: &KeyRecord,
        revocation: &Revocation,
    ) -> Result<(KeyRecord, KeyRecord)> {
        let (s, old, new, revocation) = (
            Arc::clone(&self.inner),
            old_key_id.to_owned(),
            new_key.clone(),
            revocation.clone(),
        );
        let op = async move { s.rotate_key(nid, &old, &new, &revocation).await };
        self.layer.around("rotate_key", op).await
    }

    async fn delete_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<KeyRecord> {
        let (s, key_id) = (Arc::clone(&self.inner), key_id.to_owned());
        let op = async move { s.delete_key(nid, kind, &key_id).await };
        self.layer.around("delete_key", op).await
    }

    async fn touch_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (s, key_id) = (Arc::clone(&self.inner), key_id.to_owned());
        let op = async move { s.touch_key(nid, kind, &key_id, at).await };
        self.layer.around("touch_key", op).await
    }

    async fn touch_keys(&self, touches: &[Touch]) -> Result<()> {
        let (s, touches) = (Arc::clone(&self.inner), touches.to_vec());
        let op = async move { s.touch_keys(&touches).await };
        self.layer.around("touch_keys", op).await
    }

    async fn find_imported_by_hashes(
        &self,
        nid: Uuid,
        hashes: &[[u8; 32]],
    ) -> Result<Option<KeyRecord>> {
        let (s, hashes) = (Arc::clone(&self.inner), hashes.to_vec());
        let op = async move { s.find_imported_by_hashes(nid, &hashes).await };
        self.layer.around("find_imported_by_hashes", op).await
    }

    async fn rehash_imported(
        &self,
        nid: Uuid,
        key_id: &str,
        old_hash: &[u8; 32],
        new_hash: &[u8; 32],
        secret_id: &str,
    ) -> Result<Option<KeyRecord>> {
        let (s, key_id, old, new, secret_id) = (
            Arc::clone(&self.inner),
            key_id.to_owned(),
            *old_hash,
            *new_hash,
            secret_id.to_owned(),
        );
        let op = async move {
            s.rehash_imported(nid, &key_id, &old, &new, &secret_id)
                .await
        };
        self.layer.around("rehash_imported", op).await
    }

    async fn count_active(&self, nid: Uuid, now: DateTime<Utc>) -> Result<u64> {
        let s = Arc::clone(&self.inner);
        let op = async move { s.count_active(nid, now).await };
        self.layer.around("count_active", op).await
    }

    async fn add_invalidation(&self, nid: Uuid, cache_key: &str, at: DateTime<Utc>) -> Result<()> {
        let (s, cache_key) = (Arc::clone(&self.inner), cache_key.to_owned());
        let op = async move { s.add_invalidation(nid, &cache_key, at).await };
        self.layer.around("add_invalidation", op).await
    }

    async fn pending_invalidations(&self, limit: usize) -> Result<Vec<Invalidation>> {
        let s = Arc::clone(&self.inner);
        let op = async move { s.pending_invalidations(limit).await };
        self.layer.around("pending_invalidations", op).await
    }

    async fn remove_invalidations(&self, ids: &[i64]) -> Result<()> {
        let (s, ids) = (Arc::clone(&self.inner), ids.to_vec());
        let op = async move { s.remove_invalidations(&ids).await };
        self.layer.around("remove_invalidations", op).await
    }

    async fn count_imported_with_unknown_secret(&self, known_secret_ids: &[String]) -> Result<u64> {
        let (s, known) = (Arc::clone(&self.inner), known_secret_ids.to_vec());
        let op = async move { s.count_imported_with_unknown_secret(&known).await };
        self.layer
            .around("count_imported_with_unknown_secret", op)
            .await
    }

    async fn spend_credits(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        cost: i64,
        refill: Option<(RefillInterval, DateTime<Utc>)>,
    ) -> Result<CreditSpend> {
        let (s, key_id) = (Arc::clone(&self.inner), key_id.to_owned());
        let op = async move { s.spend_credits(nid, kind, &key_id, cost, refill).await };
        self.layer.around("spend_credits", op).await
    }

    async fn get_balance(&self, nid: Uuid, actor_id: &str) -> Result<Option<ActorBalance>> {
        let (s, actor_id) = (Arc::clone(&self.inner), actor_id.to_owned());
        let op = async move { s.get_balance(nid, &actor_id).await };
        self.layer.around("get_balance", op).await
    }

    async fn set_quota(
        &self,
        nid: Uuid,
        actor_id: &str,
        quota_micros: i64,
        at: DateTime<Utc>,
    ) -> Result<ActorBalance> {
        let (s, actor_id) = (Arc::clone(&self.inner), actor_id.to_owned());
        let op = async move { s.set_quota(nid, &actor_id, quota_micros, at).await };
        self.layer.around("set_quota", op).await
    }

    async fn top_up(
        &self,
        nid: Uuid,
        actor_id: &str,
        amount_micros: i64,
        at: DateTime<Utc>,
    ) -> Result<ActorBalance> {
        let (s, actor_id) = (Arc::clone(&self.inner), actor_id.to_owned());
        let op = async move { s.top_up(nid, &actor_id, amount_micros, at).await };
        self.layer.around("top_up", op).await
    }

    async fn ingest_usage(&self, record: &UsageRecord) -> Result<IngestOutcome> {
        let (s, record) = (Arc::clone(&self.inner), record.clone());
        let op = async move { s.ingest_usage(&record).await };
        self.layer.around("ingest_usage", op).await
    }

    async fn usage_history(
        &self,
        nid: Uuid,
        actor_id: &str,
        limit: usize,
    ) -> Result<Vec<UsageRecord>> {
        let (s, actor_id) = (Arc::clone(&self.inner), actor_id.to_owned());
        let op = async move { s.usage_history(nid, &actor_id, limit).await };
        self.layer.around("usage_history", op).await
    }
}

/// Runs each operation on its own task, so that a caller dropping the future (client
/// disconnect, timeout) never cancels the database work halfway.
///
/// Why: diesel-async's `SyncConnectionWrapper` (the SQLite connection) runs queries on blocking
/// threads, and when such a query future is dropped early it waits for the thread with
/// `block_in_place`, which panics on a current-thread runtime (actix-web's workers) and stalls a
/// worker thread otherwise. Spawned, the query always runs to completion and the caller merely
/// stops waiting; the pooled connection goes back to the pool only once it is idle again.
pub(crate) struct Detach;

impl Layer for Detach {
    async fn around<T, F>(&self, _method: &'static str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        // The operation's spans stay children of the caller's (tracing).
        match tokio::spawn(tracing::Instrument::in_current_span(op)).await {
            Ok(r) => r,
            // Keep panics panics, as if the operation had run inline.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StorageError::Internal(format!("storage task: {e}"))),
        }
    }
}
