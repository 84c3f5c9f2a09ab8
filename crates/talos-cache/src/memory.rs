use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::sync::Cache;

use crate::{CacheError, CacheKey, KeyCache};

#[derive(Clone)]
struct Entry<V> {
    value: V,
    ttl: Duration,
}

struct PerEntryTtl;

impl<V> Expiry<CacheKey, Entry<V>> for PerEntryTtl {
    fn expire_after_create(&self, _: &CacheKey, e: &Entry<V>, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
    fn expire_after_update(
        &self,
        _: &CacheKey,
        e: &Entry<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// A bounded in-process cache (moka, TinyLFU admission) with a TTL per entry.
pub struct MemoryCache<V: Clone + Send + Sync + 'static> {
    inner: Cache<CacheKey, Entry<V>>,
}

impl<V: Clone + Send + Sync + 'static> MemoryCache<V> {
    /// `max_bytes` bounds the total weight; `weigh` estimates one value's size in bytes.
    pub fn new(max_bytes: u64, weigh: fn(&V) -> u32) -> Self {
        let inner = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |k: &CacheKey, e: &Entry<V>| {
                weigh(&e.value).saturating_add(k.key.len() as u32 + 64)
            })
            .expire_after(PerEntryTtl)
            .build();
        MemoryCache { inner }
    }

    /// Entries currently held (approximate; moka applies writes lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }
}

#[async_trait]
impl<V: Clone + Send + Sync + 'static> KeyCache<V> for MemoryCache<V> {
    fn kind(&self) -> &'static str {
        "memory"
    }
    async fn get(&self, key: &CacheKey) -> Result<Option<V>, CacheError> {
        Ok(self.inner.get(key).map(|e| e.value))
    }
    async fn put(&self, key: &CacheKey, value: V, ttl: Duration) -> Result<(), CacheError> {
        if !ttl.is_zero() {
            self.inner.insert(key.clone(), Entry { value, ttl });
        }
        Ok(())
    }
    async fn evict(&self, key: &CacheKey) -> Result<(), CacheError> {
        self.inner.invalidate(key);
        Ok(())
    }
}
