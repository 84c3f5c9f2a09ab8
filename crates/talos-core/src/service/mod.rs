//! The domain service: issue, verify, rotate, revoke, import, derive — composed from the keyring,
//! the credential formats, storage and the cache.

mod derive;
mod invalidation;
mod keys;
mod list;
mod requests;
mod verify;

pub use derive::DerivedToken;
pub use keys::{BatchErrorCode, BatchItem, IssuedKey, Rotated, kind_of_key_id};
pub use list::Page;
pub use requests::*;
pub use verify::{
    CacheMode, CacheStatus, RateLimitStatus, Verified, VerifyErrorCode, VerifyFailure,
    VerifyOutcome, VerifyRequest,
};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use talos_cache::{
    CacheKey, KeyCache, MemoryCache, MemoryLimiter, NoopCache, RateLimiter, Redis, RedisCache,
    RedisLimiter, RedisSettings,
};
use talos_storage::{KeyKind, KeyRecord, Store, StoreOptions};
use uuid::Uuid;

use crate::config::{CacheType, Config, ConfigSource, RateLimitBackend};
use crate::error::{CoreError, Result};
use crate::network::Networks;
use crate::runtime::Runtime;

/// What the cache holds: a key's metadata row (never a secret).
pub type CachedKey = Arc<KeyRecord>;

/// Estimated bytes of a cached row, for the memory cache's size bound.
fn weigh(k: &CachedKey) -> u32 {
    let meta = k
        .metadata
        .iter()
        .map(|(a, b)| a.len() + b.to_string().len())
        .sum::<usize>();
    let scopes = k.scopes.iter().map(|s| s.len() + 24).sum::<usize>();
    (400 + k.name.len() + k.actor_id.len() + k.key_id.len() + meta + scopes).min(u32::MAX as usize)
        as u32
}

/// How long `/health/ready` waits for each dependency.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A dependency that `/health/ready` found not ready: `dependency` (`database`, `cache`,
/// `secrets`) may be shown to clients, `detail` only logged.
#[derive(Debug)]
pub struct NotReady {
    pub dependency: &'static str,
    pub detail: String,
}

/// The Talos service. Cheap to share behind an `Arc`; every method is scoped by network id.
pub struct Service {
    runtime: ArcSwap<Runtime>,
    store: Arc<dyn Store>,
    cache: Arc<dyn KeyCache<CachedKey>>,
    networks: Networks,
    /// Keys whose `last_used_time` this node already wrote today: at most one write per key per day.
    touched: moka::sync::Cache<(Uuid, String), i64>,
    /// Audit events for failures, limited per network.
    failures: crate::audit::FailureAudit,
    /// Per-key rate limits, consulted while `rate_limit.enabled` (reloadable) is on.
    limiter: Arc<dyn RateLimiter>,
    /// `rate_limit.fail_closed`: deny when the limiter cannot answer.
    limiter_fail_closed: bool,
    /// At most one "limiter unreachable" log line per interval.
    limiter_errors: LogThrottle,
    /// At most one "cache unreachable" log line per interval (verification falls back to storage).
    cache_errors: LogThrottle,
    /// Whether the cache may be read now (a lease, for caches shared between nodes).
    cache_trust: Arc<invalidation::CacheTrust>,
    /// Delivers recorded evictions and renews `cache_trust` (shared caches only).
    _outbox: Option<invalidation::OutboxTask>,
    /// The Redis server behind `cache.type: redis`, pinged by `/health/ready`.
    redis_health: Option<Redis>,
}

/// Rate-limits a log line: at most one per `every`, counting what was suppressed in between.
pub struct LogThrottle {
    origin: Instant,
    every_ms: u64,
    /// Milliseconds since `origin` of the last line, plus one (0 = never logged).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub fn new(every: Duration) -> Self {
        LogThrottle {
            origin: Instant::now(),
            every_ms: every.as_millis() as u64,
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed since the last line)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if (last == 0 || now >= last + self.every_ms)
            && self
                .last
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::AcqRel));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// The Redis settings of `cache.redis.*`.
fn redis_settings(config: &Config) -> RedisSettings {
    let r = &config.cache.redis;
    RedisSettings {
        mode: match r.mode {
            crate::config::RedisMode::Standalone => talos_cache::RedisMode::Standalone,
            crate::config::RedisMode::Cluster => talos_cache::RedisMode::Cluster,
            crate::config::RedisMode::Sentinel => talos_cache::RedisMode::Sentinel,
        },
        addrs: r.addrs.clone(),
        password: r.password.as_ref().map(|p| p.expose().to_string()),
        db: r.db,
        timeout: r.timeout.get(),
        tls: r.tls.enabled,
        namespace: r.key_prefix.clone(),
        master_name: r.master_name.clone(),
        sentinel_password: r.sentinel_password.as_ref().map(|p| p.expose().to_string()),
        wait_replicas: r.wait_replicas,
    }
}

/// The Redis connection is lazy (a server that starts before Redis still serves), so a wrong
/// address would otherwise go unnoticed until the first cache miss. One short round trip at
/// startup turns it into a warning that names the address; it never stops the start.
async fn warn_if_unreachable(redis: &Redis, config: &Config) {
    const WAIT: Duration = Duration::from_secs(2);
    let addr = config
        .cache
        .redis
        .addrs
        .first()
        .map_or("(none)", String::as_str);
    let cause = match tokio::time::timeout(WAIT, redis.ping()).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", WAIT.as_secs()),
    };
    tracing::warn!(
        address = addr,
        error = %cause,
        "Redis is not reachable at startup (cache.redis.addrs); starting anyway: the cache and \
         cross-node invalidation stay unavailable, and verification reads the database, until it answers"
    );
}

impl Service {
    /// Builds a service from a loaded configuration: connects storage (no migrations, except
    /// `sqlite::memory:`), builds the cache and the runtime snapshot.
    pub async fn from_config(config: &Config) -> Result<Service> {
        let opts = StoreOptions {
            max_conns: config.db.max_conns,
            pool_timeout: config.db.pool_timeout.get(),
            connect_timeout: config.db.connect_timeout.get(),
            statement_timeout: config.db.statement_timeout.get(),
        };
        let store = talos_storage::connect(&config.db.dsn, &opts)
            .await
            .map_err(|e| CoreError::Unavailable(e.to_string()))?;
        // One Redis connection setup serves the cache, its invalidation channel and the limiter.
        let needs_redis = config.cache.kind == CacheType::Redis
            || config.rate_limit.backend == RateLimitBackend::Redis;
        let redis = if needs_redis {
            if config.cache.redis.db > 15 {
                return Err(CoreError::bad("cache.redis.db must be 0..15"));
            }
            Some(
                Redis::connect(&redis_settings(config))
                    .map_err(|e| CoreError::bad(format!("cache.redis: {e}")))?,
            )
        } else {
            None
        };
        if let Some(redis) = &redis {
            warn_if_unreachable(redis, config).await;
        }
        let max_size = config.cache.memory.max_size.0;
        let cache: Arc<dyn KeyCache<CachedKey>> = match (config.cache.kind, &redis) {
            (CacheType::Noop, _) => Arc::new(NoopCache),
            (CacheType::Memory, _) => Arc::new(MemoryCache::new(max_size, weigh)),
            (CacheType::Redis, Some(redis)) => {
                let local = &config.cache.redis.local;
                let l1 = local
                    .enabled
                    .then(|| (MemoryCache::new(max_size, weigh), local.ttl.get()));
                Arc::new(RedisCache::new(redis.clone(), l1))
            }
            (CacheType::Redis, None) => unreachable!("redis is connected for cache.type redis"),
        };
        let limiter: Arc<dyn RateLimiter> = match (config.rate_limit.backend, &redis) {
            (RateLimitBackend::Redis, Some(redis)) => Arc::new(RedisLimiter::new(redis.clone())),
            _ => Arc::new(MemoryLimiter::default()),
        };
        tracing::info!(
            cache = cache.kind(),
            rate_limiter = limiter.kind(),
            "verification cache and rate limiter ready"
        );
        let mut service = Service::new(config, store, cache)?.with_limiter(limiter);
        if config.cache.kind == CacheType::Redis
            && let Some(redis) = redis
        {
            service = service.with_redis_health(redis);
        }
        Ok(service)
    }

    /// Builds a service from parts (tests inject fakes here).
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        cache: Arc<dyn KeyCache<CachedKey>>,
    ) -> Result<Service> {
        let runtime = Runtime::build(config, Utc::now())
            .map_err(|e| CoreError::bad(format!("invalid configuration: {e}")))?;
        // A cache other nodes write and evict too needs the outbox lease (invalidation.rs).
        let cache_trust = Arc::new(invalidation::CacheTrust::new(cache.kind() == "redis"));
        let outbox = (cache_trust.is_shared() && tokio::runtime::Handle::try_current().is_ok())
            .then(|| invalidation::spawn_outbox(store.clone(), cache.clone(), cache_trust.clone()));
        Ok(Service {
            cache_trust,
            _outbox: outbox,
            runtime: ArcSwap::from_pointee(runtime),
            store,
            cache,
            networks: Networks::new(&config.multitenancy),
            failures: crate::audit::FailureAudit::new(10),
            limiter: Arc::new(MemoryLimiter::default()),
            limiter_fail_closed: config.rate_limit.fail_closed,
            limiter_errors: LogThrottle::new(Duration::from_secs(10)),
            cache_errors: LogThrottle::new(Duration::from_secs(10)),
            redis_health: None,
            touched: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(86_400))
                .build(),
        })
    }

    /// Replaces the rate limiter (the default is in memory, for one node).
    pub fn with_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// `noop`, `memory` or `redis`.
    pub fn cache_kind(&self) -> &'static str {
        self.cache.kind()
    }

    /// Swaps in the reloadable settings of `config` as one atomic step.
    pub fn reload(&self, config: &Config) -> std::result::Result<(), String> {
        let runtime = Runtime::build(config, Utc::now())?;
        self.runtime.store(Arc::new(runtime));
        Ok(())
    }

    /// Re-reads the config file and env captured in `source`; a broken file keeps the old
    /// settings and returns why.
    pub fn reload_from(&self, source: &ConfigSource) -> std::result::Result<Vec<String>, String> {
        let (config, warnings) = crate::config::load(source).map_err(|e| e.to_string())?;
        self.reload(&config)?;
        Ok(warnings)
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn networks(&self) -> &Networks {
        &self.networks
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Readiness: the database (and Redis, for the Redis cache) answers within 1 s each, and a
    /// current secret is configured.
    pub async fn ready(&self) -> std::result::Result<(), NotReady> {
        // Each dependency gets its own bound, so a stalled one is reported as such promptly.
        async fn within<E: std::fmt::Display>(
            dependency: &'static str,
            check: impl std::future::Future<Output = std::result::Result<(), E>>,
        ) -> std::result::Result<(), NotReady> {
            match tokio::time::timeout(READY_CHECK_TIMEOUT, check).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(NotReady {
                    dependency,
                    detail: e.to_string(),
                }),
                Err(_) => Err(NotReady {
                    dependency,
                    detail: format!("no answer within {READY_CHECK_TIMEOUT:?}"),
                }),
            }
        }
        within("database", self.store.ping()).await?;
        if let Some(redis) = &self.redis_health {
            within("cache", redis.ping()).await?;
        }
        if self.runtime.load().keyring.current().is_err() {
            return Err(NotReady {
                dependency: "secrets",
                detail: "project has no HMAC key configured".into(),
            });
        }
        Ok(())
    }

    /// Lets `/health/ready` ping the Redis server behind the cache.
    pub fn with_redis_health(mut self, redis: Redis) -> Self {
        self.redis_health = Some(redis);
        self
    }

    fn cache_key(nid: Uuid, rec: &KeyRecord) -> CacheKey {
        match (&rec.kind, &rec.imported) {
            (KeyKind::Imported, Some(h)) => CacheKey::new(nid, imported_cache_key(&h.hash)),
            _ => CacheKey::new(nid, rec.key_id.clone()),
        }
    }

    /// Drops a key's verification cache entry after a mutation (on every node, for Redis).
    async fn evict(&self, rec: &KeyRecord) {
        self.evict_key(&Self::cache_key(rec.nid, rec)).await;
    }

    /// Logs a failed cache read or write, at most once per interval.
    fn cache_error(&self, op: &str, e: &talos_cache::CacheError) {
        if let Some(suppressed) = self.cache_errors.allow() {
            tracing::warn!(error = %e, cache = self.cache.kind(), op, suppressed, "cache unavailable; verifying from the database");
        }
    }

    /// Writes `last_used_time` in the background, at most once per key per UTC day.
    fn touch(&self, rec: &KeyRecord, now: DateTime<Utc>) {
        let today = now.date_naive();
        if rec.last_used_time.is_some_and(|t| t.date_naive() == today) {
            return;
        }
        let day = i64::from(chrono::Datelike::num_days_from_ce(&today));
        let k = (rec.nid, rec.key_id.clone());
        if self.touched.get(&k) == Some(day) {
            return;
        }
        self.touched.insert(k, day);
        let (store, nid, kind, key_id) =
            (self.store.clone(), rec.nid, rec.kind, rec.key_id.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.touch_key(nid, kind, &key_id, now).await {
                    tracing::debug!(error = %e, "last_used update failed");
                }
            });
        }
    }
}

pub(crate) fn imported_cache_key(hash: &[u8; 32]) -> String {
    format!("h:{}", hex::encode(hash))
}

#[cfg(test)]
mod tests {
    use super::LogThrottle;
    use std::time::Duration;

    #[test]
    fn log_throttle_lets_one_line_through_per_interval() {
        let t = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        let t = LogThrottle::new(Duration::ZERO);
        assert_eq!(t.allow(), Some(0));
        assert!(t.allow().is_some());
    }
}
