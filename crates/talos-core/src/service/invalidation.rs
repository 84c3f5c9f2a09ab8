//! Revocation integrity for a cache shared between nodes (Redis): evictions that cannot reach it
//! are recorded in the database (the invalidation outbox), and a node reads the shared cache only
//! while it holds a short *lease* that proves the outbox was empty recently.
//!
//! The argument, with `LEASE` the lease length:
//! - A node's lease ends `LEASE` after the start of its newest poll of the outbox that found it
//!   empty (or that delivered everything it found).
//! - A mutation whose eviction fails records it in the outbox, then waits `LEASE` before it
//!   returns. Any poll that could grant a lease reaching past that return started after the
//!   record committed, so it saw the record and granted nothing until the eviction is delivered.
//! - So after the mutation returns, no node answers from the shared cache until some node has
//!   delivered the eviction: no answer comes from an entry older than the mutation, whether Redis
//!   is down, stalled, partitioned from one node, or back with its old data.
//!
//! One gap remains and is documented: a node that cannot reach the database keeps its lease
//! (refreshing it without a poll), so that a database outage does not also take the cache away;
//! if in that same window another node commits a mutation and cannot reach Redis, the first node
//! may serve the stale entry until the outbox is delivered or the entry's TTL ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use talos_cache::{CacheKey, KeyCache};
use talos_storage::Store;

use super::CachedKey;

/// How long one successful outbox poll lets a node trust the shared cache.
pub(crate) const LEASE: Duration = Duration::from_secs(2);
/// Outbox poll interval: several polls per lease, so a healthy node never lets its lease lapse.
const POLL: Duration = Duration::from_millis(500);
/// Evictions delivered per poll.
const BATCH: usize = 256;

/// Whether this node may read and fill the shared cache right now.
pub(crate) struct CacheTrust {
    origin: Instant,
    /// Milliseconds since `origin` until which the lease runs; 0 = never granted.
    until_ms: AtomicU64,
    /// Only shared caches need a lease; an in-process cache is evicted synchronously.
    shared: bool,
}

impl CacheTrust {
    pub(crate) fn new(shared: bool) -> Self {
        CacheTrust {
            origin: Instant::now(),
            until_ms: AtomicU64::new(0),
            shared,
        }
    }

    pub(crate) fn is_shared(&self) -> bool {
        self.shared
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub(crate) fn trusted(&self) -> bool {
        !self.shared || self.now_ms() < self.until_ms.load(Ordering::Acquire)
    }

    /// Extends the lease to `LEASE` after `from_ms`.
    fn grant(&self, from_ms: u64) {
        self.until_ms
            .fetch_max(from_ms + LEASE.as_millis() as u64, Ordering::AcqRel);
    }
}

/// Ends the outbox task when the service is dropped.
pub(crate) struct OutboxTask(tokio::task::AbortHandle);

impl Drop for OutboxTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the task that polls the outbox, delivers what it finds and renews the lease.
pub(crate) fn spawn_outbox(
    store: Arc<dyn Store>,
    cache: Arc<dyn KeyCache<CachedKey>>,
    trust: Arc<CacheTrust>,
) -> OutboxTask {
    OutboxTask(tokio::spawn(outbox_loop(store, cache, trust)).abort_handle())
}

async fn outbox_loop(
    store: Arc<dyn Store>,
    cache: Arc<dyn KeyCache<CachedKey>>,
    trust: Arc<CacheTrust>,
) {
    loop {
        let started = trust.now_ms();
        match tokio::time::timeout(LEASE, store.pending_invalidations(BATCH)).await {
            Ok(Ok(pending)) if pending.is_empty() => trust.grant(started),
            Ok(Ok(pending)) => {
                let mut delivered = Vec::with_capacity(pending.len());
                for inv in &pending {
                    let key = CacheKey::new(inv.nid, inv.cache_key.clone());
                    if cache.evict(&key).await.is_err() {
                        break; // the shared cache is still unreachable: keep the lease lapsed
                    }
                    delivered.push(inv.id);
                }
                if !delivered.is_empty() {
                    match store.remove_invalidations(&delivered).await {
                        Ok(()) => tracing::info!(
                            delivered = delivered.len(),
                            "delivered recorded cache evictions"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "delivered cache evictions not cleared")
                        }
                    }
                }
                if delivered.len() == pending.len() {
                    continue; // poll again at once: only an empty outbox grants the lease
                }
            }
            // The database is unreachable from this node: keep the cache (see the module docs).
            Ok(Err(_)) | Err(_) => trust.grant(trust.now_ms()),
        }
        tokio::time::sleep(POLL).await;
    }
}

impl super::Service {
    /// Evicts a key's cache entry after a mutation committed. If a shared cache cannot be
    /// reached, records the eviction in the outbox and waits out every node's lease, so that when
    /// this returns no node answers from the entry (module docs).
    pub(crate) async fn evict_key(&self, key: &CacheKey) {
        let span = super::verify::cache_span("cache.evict", self.cache.kind());
        let Err(e) = tracing::Instrument::instrument(self.cache.evict(key), span).await else {
            return;
        };
        crate::domain_metrics::domain().cache_error(crate::domain_metrics::CacheOp::Evict);
        if !self.cache_trust.is_shared() {
            tracing::warn!(error = %e, cache = self.cache.kind(), "cache eviction failed");
            return;
        }
        match self
            .store
            .add_invalidation(key.nid, &key.key, Utc::now())
            .await
        {
            Ok(()) => {
                tracing::warn!(
                    error = %e,
                    "cache eviction could not reach Redis; recorded it, and every node reads the \
                     database until it is delivered"
                );
                tokio::time::sleep(LEASE + POLL).await;
            }
            Err(db) => tracing::error!(
                error = %e,
                database = %db,
                "cache eviction could reach neither Redis nor the database; other nodes may serve \
                 the entry until its TTL"
            ),
        }
    }
}

impl super::Service {
    /// [`Service::evict_key`](super::Service::evict_key) for many keys (an actor's, after its
    /// quota changed): the ones that cannot reach a shared cache are recorded, and the lease is
    /// waited out once for all of them.
    pub(crate) async fn evict_keys(&self, keys: &[CacheKey]) {
        let mut recorded = 0usize;
        for key in keys {
            let Err(e) = self.cache.evict(key).await else {
                continue;
            };
            if !self.cache_trust.is_shared() {
                tracing::warn!(error = %e, cache = self.cache.kind(), "cache eviction failed");
                continue;
            }
            match self
                .store
                .add_invalidation(key.nid, &key.key, Utc::now())
                .await
            {
                Ok(()) => recorded += 1,
                Err(db) => tracing::error!(
                    error = %e,
                    database = %db,
                    "cache eviction could reach neither Redis nor the database; other nodes may \
                     serve the entry until its TTL"
                ),
            }
        }
        if recorded > 0 {
            tracing::warn!(
                recorded,
                "cache evictions could not reach Redis; recorded them, and every node reads the \
                 database until they are delivered"
            );
            tokio::time::sleep(LEASE + POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_lapses_and_local_caches_need_none() {
        let t = CacheTrust::new(true);
        assert!(!t.trusted(), "no lease before the first poll");
        t.grant(t.now_ms());
        assert!(t.trusted());
        let expired = CacheTrust::new(true);
        expired.until_ms.store(1, Ordering::Release);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!expired.trusted());
        assert!(CacheTrust::new(false).trusted());
    }
}
