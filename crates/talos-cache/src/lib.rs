#![doc = include_str!("../README.md")]

mod limiter;
mod memory;
mod redis_cache;
mod redis_conn;
mod redis_limiter;

pub use limiter::{Decision, MemoryLimiter, Rate, RateLimiter};
pub use memory::MemoryCache;
pub use redis_cache::RedisCache;
pub use redis_conn::{Redis, RedisMode, RedisSettings};
pub use redis_limiter::RedisLimiter;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use thiserror::Error;
use uuid::Uuid;

/// How long an eviction keeps refusing re-inserts of the same key in an in-process cache.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(10);

/// Taken by a read-through before it reads the database, handed back to [`KeyCache::put`]: the
/// put is refused when a mutation may have evicted the key after the ticket was taken, so a
/// reader holding a pre-mutation row can never store it, however long it was delayed.
///
/// - In-process caches: an eviction leaves a tombstone for [`TOMBSTONE_TTL`] and a put is refused
///   once its ticket is older than half of that, so any eviction after the ticket is still
///   tombstoned when the put runs (one monotonic clock, no cross-node timing).
/// - Redis: every eviction increments a per-key version, the ticket carries the version read
///   before the database read, and the put is one script that stores only while the version is
///   unchanged (Redis runs scripts serially, so this holds even for a put delivered late by a
///   stalled connection).
#[derive(Debug, Clone)]
pub struct Ticket {
    started: Instant,
    /// The key's eviction version in a shared cache (`""` when never evicted).
    version: Option<String>,
}

impl Ticket {
    /// A ticket for an in-process cache.
    pub fn local() -> Ticket {
        Ticket {
            started: Instant::now(),
            version: None,
        }
    }

    pub(crate) fn versioned(version: String) -> Ticket {
        Ticket {
            started: Instant::now(),
            version: Some(version),
        }
    }

    /// When the ticket was taken.
    pub fn started(&self) -> Instant {
        self.started
    }
}

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
    /// Take before reading the value to cache from the source of truth (see [`Ticket`]).
    async fn ticket(&self, key: &CacheKey) -> Result<Ticket, CacheError>;
    /// Stores `value` for `ttl` unless the key was evicted after `ticket` was taken (or may have
    /// been: see [`Ticket`]). A zero TTL stores nothing. Returns whether it stored.
    async fn put(
        &self,
        key: &CacheKey,
        value: V,
        ttl: Duration,
        ticket: &Ticket,
    ) -> Result<bool, CacheError>;
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
    async fn ticket(&self, _: &CacheKey) -> Result<Ticket, CacheError> {
        Ok(Ticket::local())
    }
    async fn put(&self, _: &CacheKey, _: V, _: Duration, _: &Ticket) -> Result<bool, CacheError> {
        Ok(false)
    }
    async fn evict(&self, _: &CacheKey) -> Result<(), CacheError> {
        Ok(())
    }
}
