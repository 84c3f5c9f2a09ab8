//! `MemoryCache`: the in-process cache (moka) with a TTL per entry and the eviction tombstones of
//! the revocation-integrity protocol (docs/ARCHITECTURE.md).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::sync::Cache;

use crate::{CacheError, CacheKey, KeyCache, TOMBSTONE_TTL, Ticket};

/// A slot: a cached value, or the tombstone an eviction leaves behind.
#[derive(Clone)]
enum Slot<V> {
    Value {
        value: V,
        ttl: Duration,
    },
    /// Written by `evict`: refuses every put for [`TOMBSTONE_TTL`] (and readers older than half
    /// of that are refused by their age), so that a verification that read the database before a
    /// revocation cannot re-cache the pre-revocation row. Refusing fresh readers too keeps this
    /// simple: a value stored over the tombstone would otherwise erase the eviction's trace.
    Tombstone,
}

impl<V> Slot<V> {
    fn ttl(&self, tombstone: Duration) -> Duration {
        match self {
            Slot::Value { ttl, .. } => *ttl,
            Slot::Tombstone => tombstone,
        }
    }
}

struct PerEntryTtl(Duration);

impl<V> Expiry<CacheKey, Slot<V>> for PerEntryTtl {
    fn expire_after_create(&self, _: &CacheKey, e: &Slot<V>, _: Instant) -> Option<Duration> {
        Some(e.ttl(self.0))
    }
    fn expire_after_update(
        &self,
        _: &CacheKey,
        e: &Slot<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl(self.0))
    }
}

/// A bounded in-process cache (moka, TinyLFU admission) with a TTL per entry.
///
/// `evict` leaves a short-lived tombstone that refuses `put`s of the same key: a reader that
/// fetched the row before a mutation and writes it back after the eviction would otherwise keep
/// serving the old row for a whole TTL.
pub struct MemoryCache<V: Clone + Send + Sync + 'static> {
    inner: Cache<CacheKey, Slot<V>>,
    /// Puts whose reader started longer ago than this are refused: half the tombstone lifetime,
    /// so a tombstone left by any eviction after the reader started is still there at the put.
    max_read_age: Duration,
}

impl<V: Clone + Send + Sync + 'static> Clone for MemoryCache<V> {
    fn clone(&self) -> Self {
        MemoryCache {
            inner: self.inner.clone(),
            max_read_age: self.max_read_age,
        }
    }
}

impl<V: Clone + Send + Sync + 'static> MemoryCache<V> {
    /// `max_bytes` bounds the total weight; `weigh` estimates one value's size in bytes.
    pub fn new(max_bytes: u64, weigh: fn(&V) -> u32) -> Self {
        Self::with_tombstone_ttl(max_bytes, weigh, TOMBSTONE_TTL)
    }

    /// Like [`MemoryCache::new`] with another tombstone lifetime (tests).
    pub fn with_tombstone_ttl(max_bytes: u64, weigh: fn(&V) -> u32, tombstone: Duration) -> Self {
        let inner = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |k: &CacheKey, e: &Slot<V>| {
                let v = match e {
                    Slot::Value { value, .. } => weigh(value),
                    Slot::Tombstone => 0,
                };
                v.saturating_add(k.key.len() as u32 + 64)
            })
            .expire_after(PerEntryTtl(tombstone))
            .build();
        MemoryCache {
            inner,
            max_read_age: tombstone / 2,
        }
    }

    /// Entries currently held, tombstones included (approximate; moka applies writes lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    /// Drops every entry and tombstone.
    pub fn clear(&self) {
        self.inner.invalidate_all();
    }

    pub(crate) fn get_now(&self, key: &CacheKey) -> Option<V> {
        match self.inner.get(key) {
            Some(Slot::Value { value, .. }) => Some(value),
            _ => None,
        }
    }

    /// Stores unless a tombstone guards the key or the reader that fetched `value` started too
    /// long ago (at `started`) for a tombstone to still guard it; returns whether it stored.
    pub(crate) fn put_now(
        &self,
        key: &CacheKey,
        value: V,
        ttl: Duration,
        started: Instant,
    ) -> bool {
        if ttl.is_zero() || started.elapsed() >= self.max_read_age {
            return false;
        }
        let mut stored = false;
        self.inner
            .entry(key.clone())
            .and_compute_with(|cur| match cur.map(|e| e.into_value()) {
                Some(Slot::Tombstone) => Op::Nop,
                _ => {
                    stored = true;
                    Op::Put(Slot::Value { value, ttl })
                }
            });
        stored
    }

    pub(crate) fn evict_now(&self, key: &CacheKey) {
        self.inner
            .entry(key.clone())
            .and_compute_with(|_| Op::Put(Slot::Tombstone));
    }
}

#[async_trait]
impl<V: Clone + Send + Sync + 'static> KeyCache<V> for MemoryCache<V> {
    fn kind(&self) -> &'static str {
        "memory"
    }
    async fn get(&self, key: &CacheKey) -> Result<Option<V>, CacheError> {
        Ok(self.get_now(key))
    }
    async fn ticket(&self, _: &CacheKey) -> Result<Ticket, CacheError> {
        Ok(Ticket::local())
    }
    async fn put(
        &self,
        key: &CacheKey,
        value: V,
        ttl: Duration,
        ticket: &Ticket,
    ) -> Result<bool, CacheError> {
        Ok(self.put_now(key, value, ttl, ticket.started()))
    }
    async fn evict(&self, key: &CacheKey) -> Result<(), CacheError> {
        self.evict_now(key);
        Ok(())
    }
}
