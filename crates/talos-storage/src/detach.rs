//! Run each operation of a store on its own task, so that a caller dropping the future (client
//! disconnect, timeout) never cancels the database work halfway.
//!
//! Why: diesel-async's `SyncConnectionWrapper` (our SQLite connection) runs queries on blocking
//! threads, and when such a query future is dropped early it waits for the thread with
//! `block_in_place`, which panics on a current-thread runtime (actix-web's workers) and stalls a
//! worker thread otherwise. Spawned, the query always runs to completion and the caller merely
//! stops waiting; the pooled connection goes back to the pool only once it is idle again.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Result, StorageError};
use crate::model::{
    BatchItemOutcome, InsertOutcome, Invalidation, KeyKind, KeyPatch, KeyRecord, ListQuery, Quota,
    Revocation,
};
use crate::store::Store;

pub(crate) struct Detached<S>(pub(crate) Arc<S>);

async fn run<S, F, Fut, T>(store: &Arc<S>, op: F) -> Result<T>
where
    F: FnOnce(Arc<S>) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match tokio::spawn(op(Arc::clone(store))).await {
        Ok(r) => r,
        // Keep panics panics, as if the operation had run inline.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StorageError::Internal(format!("storage task: {e}"))),
    }
}

#[async_trait]
impl<S: Store> Store for Detached<S> {
    fn pool_status(&self) -> Option<crate::store::PoolStatus> {
        self.0.pool_status()
    }

    async fn ping(&self) -> Result<()> {
        run(&self.0, |s| async move { s.ping().await }).await
    }

    async fn insert_key(&self, key: &KeyRecord) -> Result<InsertOutcome> {
        let key = key.clone();
        run(&self.0, |s| async move { s.insert_key(&key).await }).await
    }

    async fn insert_keys_batch(&self, keys: &[KeyRecord]) -> Result<Vec<BatchItemOutcome>> {
        let keys = keys.to_vec();
        run(&self.0, |s| async move { s.insert_keys_batch(&keys).await }).await
    }

    async fn insert_key_within(&self, key: &KeyRecord, quota: &Quota) -> Result<InsertOutcome> {
        let (key, quota) = (key.clone(), *quota);
        run(&self.0, |s| async move {
            s.insert_key_within(&key, &quota).await
        })
        .await
    }

    async fn insert_keys_batch_within(
        &self,
        keys: &[KeyRecord],
        quota: &Quota,
    ) -> Result<Vec<BatchItemOutcome>> {
        let (keys, quota) = (keys.to_vec(), *quota);
        run(&self.0, |s| async move {
            s.insert_keys_batch_within(&keys, &quota).await
        })
        .await
    }

    async fn get_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<KeyRecord> {
        let key_id = key_id.to_owned();
        run(
            &self.0,
            |s| async move { s.get_key(nid, kind, &key_id).await },
        )
        .await
    }

    async fn list_keys(
        &self,
        nid: Uuid,
        kind: KeyKind,
        query: &ListQuery,
    ) -> Result<Vec<KeyRecord>> {
        let query = query.clone();
        run(
            &self.0,
            |s| async move { s.list_keys(nid, kind, &query).await },
        )
        .await
    }

    async fn update_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        patch: &KeyPatch,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord> {
        let (key_id, patch) = (key_id.to_owned(), patch.clone());
        run(&self.0, |s| async move {
            s.update_key(nid, kind, &key_id, &patch, now).await
        })
        .await
    }

    async fn revoke_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        revocation: &Revocation,
    ) -> Result<KeyRecord> {
        let (key_id, revocation) = (key_id.to_owned(), revocation.clone());
        run(&self.0, |s| async move {
            s.revoke_key(nid, kind, &key_id, &revocation).await
        })
        .await
    }

    async fn rotate_key(
        &self,
        nid: Uuid,
        old_key_id: &str,
        new_key: &KeyRecord,
        revocation: &Revocation,
    ) -> Result<(KeyRecord, KeyRecord)> {
        let (old, new, revocation) = (old_key_id.to_owned(), new_key.clone(), revocation.clone());
        run(&self.0, |s| async move {
            s.rotate_key(nid, &old, &new, &revocation).await
        })
        .await
    }

    async fn delete_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<KeyRecord> {
        let key_id = key_id.to_owned();
        run(&self.0, |s| async move {
            s.delete_key(nid, kind, &key_id).await
        })
        .await
    }

    async fn touch_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let key_id = key_id.to_owned();
        run(&self.0, |s| async move {
            s.touch_key(nid, kind, &key_id, at).await
        })
        .await
    }

    async fn find_imported_by_hashes(
        &self,
        nid: Uuid,
        hashes: &[[u8; 32]],
    ) -> Result<Option<KeyRecord>> {
        let hashes = hashes.to_vec();
        run(&self.0, |s| async move {
            s.find_imported_by_hashes(nid, &hashes).await
        })
        .await
    }

    async fn rehash_imported(
        &self,
        nid: Uuid,
        key_id: &str,
        old_hash: &[u8; 32],
        new_hash: &[u8; 32],
        secret_id: &str,
    ) -> Result<Option<KeyRecord>> {
        let (key_id, old_hash, new_hash, secret_id) = (
            key_id.to_owned(),
            *old_hash,
            *new_hash,
            secret_id.to_owned(),
        );
        run(&self.0, |s| async move {
            s.rehash_imported(nid, &key_id, &old_hash, &new_hash, &secret_id)
                .await
        })
        .await
    }

    async fn count_active(&self, nid: Uuid, now: DateTime<Utc>) -> Result<u64> {
        run(&self.0, |s| async move { s.count_active(nid, now).await }).await
    }

    async fn add_invalidation(&self, nid: Uuid, cache_key: &str, at: DateTime<Utc>) -> Result<()> {
        let cache_key = cache_key.to_owned();
        run(&self.0, |s| async move {
            s.add_invalidation(nid, &cache_key, at).await
        })
        .await
    }

    async fn pending_invalidations(&self, limit: usize) -> Result<Vec<Invalidation>> {
        run(
            &self.0,
            |s| async move { s.pending_invalidations(limit).await },
        )
        .await
    }

    async fn remove_invalidations(&self, ids: &[i64]) -> Result<()> {
        let ids = ids.to_vec();
        run(
            &self.0,
            |s| async move { s.remove_invalidations(&ids).await },
        )
        .await
    }

    async fn count_imported_with_unknown_secret(&self, known_secret_ids: &[String]) -> Result<u64> {
        let known = known_secret_ids.to_vec();
        run(&self.0, |s| async move {
            s.count_imported_with_unknown_secret(&known).await
        })
        .await
    }
}
