#![doc = include_str!("../README.md")]

mod limiter;
mod memory;
mod redis_cache;
mod redis_conn;
mod redis_limiter;

pub use limiter::{Decision, MemoryLimiter, Rate, RateLimiter};
pub use memory::MemoryCache;
pub use redis_cache::RedisCache;
pub use redis_conn::{Redis, RedisSettings};
pub use redis_limiter::RedisLimiter;

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;
use uuid::Uuid;

/// How long an eviction keeps refusing re-inserts of the same key (in memory and in Redis).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum CacheError {
    /// The backend (Redis) is unreachable, or this node cannot trust its entries right now
    /// (invalidation channel down); callers fall back to the database.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

/// A cache entry's address: the network and the key (key id, or hash for imported keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub nid: Uuid,
    pub key: String,
}

impl CacheKey {
    pub fn new(nid: Uuid, key: impl Into<String>) -> Self {
        CacheKey {
            nid,
            key: key.into(),
        }
    }
}

/// The verification cache. Values hold key metadata, never secrets.
#[async_trait]
pub trait KeyCache<V: Clone + Send + Sync + 'static>: Send + Sync + 'static {
    /// `noop`, `memory` or `redis`, for logs and metrics.
    fn kind(&self) -> &'static str;
    async fn get(&self, key: &CacheKey) -> Result<Option<V>, CacheError>;
    /// Stores `value` for `ttl`. A zero TTL stores nothing. A key evicted less than
    /// [`TOMBSTONE_TTL`] ago is not stored either (its reader may hold a pre-mutation row).
    async fn put(&self, key: &CacheKey, value: V, ttl: Duration) -> Result<(), CacheError>;
    /// Drops the entry — on every node, for backends shared between nodes.
    async fn evict(&self, key: &CacheKey) -> Result<(), CacheError>;
}

/// Caches nothing: every read misses.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopCache;

#[async_trait]
impl<V: Clone + Send + Sync + 'static> KeyCache<V> for NoopCache {
    fn kind(&self) -> &'static str {
        "noop"
    }
    async fn get(&self, _: &CacheKey) -> Result<Option<V>, CacheError> {
        Ok(None)
    }
    async fn put(&self, _: &CacheKey, _: V, _: Duration) -> Result<(), CacheError> {
        Ok(())
    }
    async fn evict(&self, _: &CacheKey) -> Result<(), CacheError> {
        Ok(())
    }
}
