//! The domain service: issue, verify, rotate, revoke, import, derive — composed from the keyring,
//! the credential formats, storage and the cache.

mod derive;
mod invalidation;
mod keys;
mod last_used;
mod list;
mod metering;
mod plan;
mod requests;
mod self_service;
mod verify;

pub use derive::DerivedToken;
pub use keys::{BatchItem, IssuedKey, Rotated};
pub use list::Page;
pub use metering::{BalanceStatus, Ingested, Metering, UsageInput};
pub use plan::Plan;
pub use requests::{
    CreditsInput, DeriveRequest, ImportRequest, KeySpec, ListRequest, RateLimitInput,
    RevokeRequest, RotateRequest, TokenAlgorithm, UpdateField, UpdateRequest,
};
pub use self_service::SelfIssueRequest;
pub use verify::{
    CacheMode, CacheStatus, MAX_BATCH_VERIFY, RateLimitStatus, Verified, VerifyErrorCode,
    VerifyFailure, VerifyOutcome, VerifyRequest,
};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use talos_cache::{
    CacheKey, KeyCache, MemoryCache, MemoryLimiter, NoopCache, RateLimiter, Redis, RedisCache,
    RedisLimiter,
};
use talos_storage::{KeyKind, KeyRecord, Store};
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::config::{CacheType, Config, ConfigError, RateLimitBackend};
use crate::error::{CoreError, Result};
use crate::network::Networks;
use crate::runtime::{Runtime, Runtimes};

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

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not ready: {}", self.dependency, self.detail)
    }
}

impl std::error::Error for NotReady {}

/// The Talos service. Cheap to share behind an `Arc`; every method is scoped by network id.
pub struct Service {
    /// The reloadable settings of every network (one snapshot each with an overlay).
    runtimes: ArcSwap<Runtimes>,
    store: Arc<dyn Store>,
    cache: Arc<dyn KeyCache<CachedKey>>,
    networks: Networks,
    /// The asynchronous `last_used_time` writer (`last_used.*`).
    last_used: last_used::Writer,
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
    /// The time the service acts on (tests move it).
    clock: Arc<dyn Clock>,
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

/// The Redis connection is lazy (a server that starts before Redis still serves), so a wrong
/// address would otherwise go unnoticed until the first cache miss. One short round trip at
/// startup turns it into a warning that names the address; it never stops the start.
async fn warn_if_unreachable(redis: &Redis, first_addr: Option<&String>) {
    const WAIT: Duration = Duration::from_secs(2);
    let addr = first_addr.map_or("(none)", String::as_str);
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
    /// `sqlite::memory:`), builds the cache and the runtime snapshots.
    pub async fn from_config(config: &Config) -> Result<Service> {
        Service::from_plan(Plan::new(config)?).await
    }

    /// Builds the service that `plan` describes: connects storage and Redis, builds the cache
    /// and the limiter.
    pub async fn from_plan(plan: Plan) -> Result<Service> {
        let store = talos_storage::connect(&plan.dsn, &plan.store)
            .await
            .map_err(|e| CoreError::Unavailable(e.to_string()))?;
        // One Redis connection setup serves the cache, its invalidation channel and the limiter.
        let redis = match &plan.redis {
            Some(settings) => {
                let redis = Redis::connect(settings)
                    .map_err(|e| CoreError::bad(format!("cache.redis: {e}")))?;
                warn_if_unreachable(&redis, settings.addrs.first()).await;
                Some(redis)
            }
            None => None,
        };
        let max_size = plan.cache_max_size;
        let cache: Arc<dyn KeyCache<CachedKey>> = match (plan.cache, &redis) {
            (CacheType::Noop, _) => Arc::new(NoopCache),
            (CacheType::Memory, _) => Arc::new(MemoryCache::new(max_size, weigh)),
            (CacheType::Redis, Some(redis)) => {
                let l1 = plan
                    .local_ttl
                    .map(|ttl| (MemoryCache::new(max_size, weigh), ttl));
                Arc::new(RedisCache::new(redis.clone(), l1))
            }
            (CacheType::Redis, None) => unreachable!("redis is connected for cache.type redis"),
        };
        let limiter: Arc<dyn RateLimiter> = match (plan.limiter, &redis) {
            (RateLimitBackend::Redis, Some(redis)) => Arc::new(RedisLimiter::new(redis.clone())),
            _ => Arc::new(MemoryLimiter::default()),
        };
        tracing::info!(
            cache = cache.kind(),
            rate_limiter = limiter.kind(),
            "verification cache and rate limiter ready"
        );
        for w in plan.warnings() {
            tracing::warn!("{w}");
        }
        plan.log_unenforced_rate_limits();
        let redis_health = redis.filter(|_| plan.cache == CacheType::Redis);
        let mut service = Service::assemble(plan, store, cache).with_limiter(limiter);
        if let Some(redis) = redis_health {
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
        Ok(Service::assemble(Plan::new(config)?, store, cache))
    }

    fn assemble(plan: Plan, store: Arc<dyn Store>, cache: Arc<dyn KeyCache<CachedKey>>) -> Service {
        // A cache other nodes write and evict too needs the outbox lease (invalidation.rs).
        let cache_trust = Arc::new(invalidation::CacheTrust::new(cache.kind() == "redis"));
        let outbox = (cache_trust.is_shared() && tokio::runtime::Handle::try_current().is_ok())
            .then(|| invalidation::spawn_outbox(store.clone(), cache.clone(), cache_trust.clone()));
        Service {
            cache_trust,
            _outbox: outbox,
            runtimes: ArcSwap::from_pointee(plan.runtimes),
            last_used: last_used::Writer::start(store.clone(), plan.last_used),
            store,
            cache,
            networks: plan.networks,
            failures: crate::audit::FailureAudit::new(10),
            limiter: Arc::new(MemoryLimiter::default()),
            limiter_fail_closed: plan.limiter_fail_closed,
            limiter_errors: LogThrottle::new(Duration::from_secs(10)),
            cache_errors: LogThrottle::new(Duration::from_secs(10)),
            redis_health: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the clock (the default is the system clock): tests move time with it.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by the service's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Replaces the rate limiter (the default is in memory, for one node).
    pub fn with_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Swaps in the reloadable settings of `config`, every network's at once, as one atomic
    /// step, and returns warnings to log. A main configuration that cannot be used (a JWK set
    /// that cannot be read) changes nothing and is an error. A network overlay that cannot be
    /// used keeps that network's previous settings; the returned warnings say why.
    pub fn reload(&self, config: &Config) -> std::result::Result<Vec<String>, ConfigError> {
        let previous = self.runtimes.load();
        let (runtimes, built) = Runtimes::build(config, Utc::now(), Some(&previous))?;
        self.runtimes.store(Arc::new(runtimes));
        let mut warnings = built.warnings;
        warnings.extend(
            built.kept.into_iter().map(|e| {
                format!("network overlay not reloaded, keeping its previous settings: {e}")
            }),
        );
        Ok(warnings)
    }

    /// Writes the `last_used_time` updates still queued and stops the writer: call it on
    /// graceful shutdown, after the last request.
    pub async fn shutdown(&self) {
        self.last_used.close().await;
    }

    /// The current snapshot of network `nid`'s reloadable settings.
    pub(crate) fn runtime(&self, nid: Uuid) -> Arc<Runtime> {
        self.runtimes.load().get(nid).clone()
    }

    /// How requests are assigned to networks (`multitenancy`).
    pub fn networks(&self) -> &Networks {
        &self.networks
    }

    /// The issuer verify answers of network `nid` name (`credentials.issuer`, reloadable).
    pub fn issuer(&self, nid: Uuid) -> Arc<str> {
        self.runtimes.load().get(nid).issuer.clone()
    }

    /// Whether `secrets.hmac.current` is configured for every network served: without it,
    /// issue and verify fail there.
    pub fn has_current_secret(&self) -> bool {
        self.runtimes
            .load()
            .in_use()
            .all(|rt| rt.keyring.has_current())
    }

    /// Imported keys hashed under a secret that is no longer configured (they cannot verify):
    /// a startup diagnostic.
    pub async fn count_imported_with_unknown_secret(&self) -> Result<u64> {
        let known: Vec<String> = self
            .runtimes
            .load()
            .all()
            .flat_map(|rt| rt.keyring.iter().map(|e| e.id().to_string()))
            .collect();
        Ok(self
            .store
            .count_imported_with_unknown_secret(&known)
            .await?)
    }

    /// The database connection pool now, for gauges; `None` for stores without a pool.
    pub fn pool_status(&self) -> Option<talos_storage::PoolStatus> {
        self.store.pool_status()
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
        if !self.has_current_secret() {
            return Err(NotReady {
                dependency: "secrets",
                detail: "project has no HMAC key configured".into(),
            });
        }
        Ok(())
    }

    /// Lets `/health/ready` ping the Redis server behind the cache.
    fn with_redis_health(mut self, redis: Redis) -> Self {
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

    /// Counts a failed cache read or write and logs it, at most once per interval.
    fn cache_error(&self, op: crate::domain_metrics::CacheOp, e: &talos_cache::CacheError) {
        crate::domain_metrics::domain().cache_error(op);
        if let Some(suppressed) = self.cache_errors.allow() {
            tracing::warn!(error = %e, cache = self.cache.kind(), op = op.label(), suppressed, "cache unavailable; verifying from the database");
        }
    }

    /// Queues a `last_used_time` write (at most once per key per UTC day; never waits).
    fn touch(&self, rec: &KeyRecord, now: DateTime<Utc>) {
        self.last_used.offer(rec, now);
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
