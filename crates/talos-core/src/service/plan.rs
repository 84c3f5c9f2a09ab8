//! What a service is built from, derived from the configuration before anything connects:
//! storage options, Redis settings, the cache and limiter choices, every network's runtime
//! snapshot and the `last_used` writer's settings. [`Service::from_config`] is
//! [`Plan::new`] then [`Service::from_plan`], so the plan is what runs; its `Debug` form lets a
//! test check that every configuration key reaches the part it configures.
//!
//! [`Service::from_config`]: super::Service::from_config
//! [`Service::from_plan`]: super::Service::from_plan

use std::time::Duration;

use chrono::Utc;
use talos_cache::RedisSettings;
use talos_storage::StoreOptions;

use super::last_used;
use crate::config::{CacheType, Config, RateLimitBackend, RedisMode};
use crate::error::{CoreError, Result};
use crate::network::Networks;
use crate::runtime::Runtimes;

/// The parts of a service and their settings (see the module documentation). Secrets appear in
/// `Debug` only as key ids.
#[derive(Debug)]
pub struct Plan {
    pub(crate) dsn: String,
    pub(crate) store: StoreOptions,
    /// Set when the cache or the limiter uses Redis.
    pub(crate) redis: Option<RedisSettings>,
    pub(crate) cache: CacheType,
    pub(crate) cache_max_size: u64,
    /// The in-process layer in front of Redis: its entries' longest life.
    pub(crate) local_ttl: Option<Duration>,
    pub(crate) limiter: RateLimitBackend,
    pub(crate) limiter_fail_closed: bool,
    pub(crate) runtimes: Runtimes,
    pub(crate) networks: Networks,
    pub(crate) last_used: last_used::Settings,
    /// Warnings found while building the runtime snapshots (network overlays).
    pub(crate) warnings: Vec<String>,
}

impl Plan {
    /// Derives the plan of `config`; reads the files it names (JWK sets, network overlays). A
    /// file that cannot be used is an error naming it.
    pub fn new(config: &Config) -> Result<Plan> {
        let (runtimes, built) = Runtimes::build(config, Utc::now(), None)
            .map_err(|e| CoreError::bad(format!("invalid configuration: {e}")))?;
        let needs_redis = config.cache.kind == CacheType::Redis
            || config.rate_limit.backend == RateLimitBackend::Redis;
        if needs_redis && config.cache.redis.db > 15 {
            return Err(CoreError::bad("cache.redis.db must be 0..15"));
        }
        let local = &config.cache.redis.local;
        Ok(Plan {
            dsn: config.db.dsn.clone(),
            store: StoreOptions {
                max_conns: config.db.max_conns,
                pool_timeout: config.db.pool_timeout.get(),
                connect_timeout: config.db.connect_timeout.get(),
                statement_timeout: config.db.statement_timeout.get(),
            },
            redis: needs_redis.then(|| redis_settings(config)),
            cache: config.cache.kind,
            cache_max_size: config.cache.memory.max_size.0,
            local_ttl: (config.cache.kind == CacheType::Redis && local.enabled)
                .then(|| local.ttl.get()),
            limiter: config.rate_limit.backend,
            limiter_fail_closed: config.rate_limit.fail_closed,
            runtimes,
            networks: Networks::new(&config.multitenancy),
            last_used: last_used::Settings::from(&config.last_used),
            warnings: built.warnings,
        })
    }

    /// Warnings to log before starting (network overlays).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// One startup line when some network stores keys' `rate_limit_policy` without enforcing
    /// it (`rate_limit.enabled: false`, the default), so that nobody believes a limit holds.
    pub(crate) fn log_unenforced_rate_limits(&self) {
        let in_use: Vec<bool> = self
            .runtimes
            .in_use()
            .map(|rt| rt.rate_limit_enabled)
            .collect();
        let off = in_use.iter().filter(|on| !**on).count();
        if off == in_use.len() {
            tracing::info!(
                "rate_limit.enabled is false: keys' rate_limit_policy is stored and returned, but not enforced on verify"
            );
        } else if off > 0 {
            tracing::info!(
                networks = off,
                "rate_limit.enabled is false for some networks: their keys' rate_limit_policy is stored and returned, but not enforced on verify"
            );
        }
    }
}

/// The Redis settings of `cache.redis.*`.
fn redis_settings(config: &Config) -> RedisSettings {
    let r = &config.cache.redis;
    RedisSettings {
        mode: match r.mode {
            RedisMode::Standalone => talos_cache::RedisMode::Standalone,
            RedisMode::Cluster => talos_cache::RedisMode::Cluster,
            RedisMode::Sentinel => talos_cache::RedisMode::Sentinel,
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
