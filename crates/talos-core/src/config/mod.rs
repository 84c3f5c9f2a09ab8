//! The configuration tree: one typed tree, loaded once from a YAML file and `TALOS_*` environment
//! variables (see [`load`]), then passed explicitly.
//!
//! [`Config`] holds the domain's sections only. A program that embeds the service and has
//! settings of its own (the server's `serve`, `log`, `tracing`) declares them as [`Sections`]
//! and loads the whole tree as a [`Tree`] with [`load_tree`]: still one file, one set of
//! `TALOS_*` variables and one `config_hash`, with unknown keys refused across both parts.

mod fingerprint;
mod load;
mod overlay;
mod reference;
mod tree;
mod types;

pub use fingerprint::{REDACTED, config_hash};
pub use load::{
    ConfigError, ConfigSource, env_var_names, load, load_str, load_tree, load_tree_str,
};
pub use overlay::{OVERLAY_KEYS, apply_overlay};
pub use reference::reference_markdown;
pub use tree::{NoSections, Sections, Tree};
pub use types::{ByteSize, ConfigDuration};

use serde::{Deserialize, Serialize};
use talos_secrets::{RetiredSecret, Secret};

/// Upstream keys that mean nothing here, with why: accepted so that upstream files load, and named
/// in one startup warning each when a file or the environment sets them (decisions.md,
/// "Settings"). Go's Ristretto and go-redis pool knobs have no counterpart: moka admits by its
/// own policy, and each node multiplexes Redis commands over one connection (plus one for
/// pub/sub) that reconnects on failure.
pub const NO_EFFECT: &[(&str, &str)] = &[
    (
        "cache.memory.num_counters",
        "a Ristretto admission knob; the memory cache (moka) sizes its admission filter itself",
    ),
    (
        "cache.redis.pool_size",
        "commands share one multiplexed connection per Redis node, not a pool",
    ),
    (
        "cache.redis.min_idle_conns",
        "commands share one multiplexed connection per Redis node, not a pool",
    ),
    (
        "cache.redis.conn_max_idle_time",
        "the multiplexed Redis connection is kept open and reconnects on failure",
    ),
    (
        "cache.redis.conn_max_lifetime",
        "the multiplexed Redis connection is kept open and reconnects on failure",
    ),
];

/// The domain's configuration. Every section is optional; defaults follow upstream except where
/// `decisions.md` overrides them (key prefix `talos`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub credentials: CredentialsConfig,
    pub secrets: SecretsConfig,
    pub db: DbConfig,
    pub cache: CacheConfig,
    pub rate_limit: RateLimitConfig,
    pub quota: QuotaConfig,
    pub last_used: LastUsedConfig,
    pub multitenancy: MultitenancyConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialsConfig {
    /// Required (except with `serve --dev`): the `iss` of derived tokens and the verify `issuer`.
    pub issuer: String,
    pub issuer_retired: Vec<RetiredValue>,
    pub clock_skew: ConfigDuration,
    pub api_keys: ApiKeysConfig,
    pub derived_tokens: DerivedTokensConfig,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        CredentialsConfig {
            issuer: String::new(),
            issuer_retired: Vec::new(),
            clock_skew: ConfigDuration::secs(300),
            api_keys: ApiKeysConfig::default(),
            derived_tokens: DerivedTokensConfig::default(),
        }
    }
}

/// A retired non-secret value (issuer), as a string or `{value, expires_at}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RetiredValue {
    Plain(String),
    WithExpiry {
        value: String,
        #[serde(default)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
}

impl RetiredValue {
    pub fn value(&self) -> &str {
        match self {
            RetiredValue::Plain(v) | RetiredValue::WithExpiry { value: v, .. } => v,
        }
    }
    pub fn live_at(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        match self {
            RetiredValue::WithExpiry {
                expires_at: Some(at),
                ..
            } => now < *at,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// TTL when a request sends none; unset means requests must send `ttl`.
    pub default_ttl: Option<ConfigDuration>,
    /// Inclusive cap on TTLs, and the maximum age of an issued key's timestamp.
    pub max_ttl: ConfigDuration,
    pub prefix: PrefixConfig,
}

impl Default for ApiKeysConfig {
    fn default() -> Self {
        ApiKeysConfig {
            default_ttl: None,
            max_ttl: ConfigDuration::secs(8760 * 3600),
            prefix: PrefixConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefixConfig {
    pub current: String,
    pub retired: Vec<String>,
    pub public_current: Option<String>,
    pub public_retired: Vec<String>,
}

impl Default for PrefixConfig {
    fn default() -> Self {
        PrefixConfig {
            current: "talos".into(),
            retired: Vec::new(),
            public_current: None,
            public_retired: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DerivedTokensConfig {
    pub default_ttl: ConfigDuration,
    pub jwt: JwtConfig,
    pub macaroon: MacaroonConfig,
}

impl Default for DerivedTokensConfig {
    fn default() -> Self {
        DerivedTokensConfig {
            default_ttl: ConfigDuration::secs(3600),
            jwt: JwtConfig::default(),
            macaroon: MacaroonConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    pub signing_key_id: String,
    pub signing_keys: SigningKeysConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningKeysConfig {
    /// `base64://<JWKS>` or `file://<path>` URLs of JWK sets.
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MacaroonConfig {
    pub prefix: MacaroonPrefixConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MacaroonPrefixConfig {
    pub current: String,
    pub retired: Vec<String>,
}

impl Default for MacaroonPrefixConfig {
    fn default() -> Self {
        MacaroonPrefixConfig {
            current: "mc".into(),
            retired: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    pub hmac: HmacSecretsConfig,
    /// Accepted for compatibility with the quickstart and ignored with a warning.
    #[serde(skip_serializing)]
    pub default: Option<serde_json::Value>,
    /// Accepted for compatibility with the quickstart and ignored with a warning.
    #[serde(skip_serializing)]
    pub pagination: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HmacSecretsConfig {
    pub current: Option<Secret>,
    pub retired: Vec<RetiredSecret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://…`.
    pub dsn: String,
    pub max_conns: usize,
    pub pool_timeout: ConfigDuration,
    pub connect_timeout: ConfigDuration,
    /// Longest a statement may run, lock waits included.
    pub statement_timeout: ConfigDuration,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            dsn: "sqlite://talos.db".into(),
            max_conns: 16,
            pool_timeout: ConfigDuration::secs(5),
            connect_timeout: ConfigDuration::secs(5),
            statement_timeout: ConfigDuration::secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheType {
    Noop,
    Memory,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(rename = "type")]
    pub kind: CacheType,
    pub enabled: bool,
    pub ttl: ConfigDuration,
    pub memory: MemoryCacheConfig,
    pub redis: RedisConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            kind: CacheType::Noop,
            enabled: true,
            ttl: ConfigDuration::secs(300),
            memory: MemoryCacheConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryCacheConfig {
    pub max_size: ByteSize,
    /// No effect ([`NO_EFFECT`]).
    pub num_counters: u64,
}

impl Default for MemoryCacheConfig {
    fn default() -> Self {
        MemoryCacheConfig {
            max_size: ByteSize(100 << 20),
            num_counters: 10_000,
        }
    }
}

/// How Redis is deployed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server: the first of `addrs`.
    #[default]
    Standalone,
    /// Redis Cluster: `addrs` are seed nodes (list several); `db` must be 0.
    Cluster,
    /// Sentinel-managed primary: `addrs` are the sentinels, `master_name` the monitored set.
    Sentinel,
}

/// One Redis serves the shared cache, cross-node invalidation and the shared rate limiter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `standalone`, `cluster` or `sentinel`.
    pub mode: RedisMode,
    /// `host:port` entries: the server (standalone: the first entry is used), seed nodes
    /// (cluster), or the sentinels (sentinel).
    pub addrs: Vec<String>,
    /// The sentinels' name of the monitored primary (sentinel mode; required there).
    pub master_name: String,
    /// Password of the sentinels themselves, if they require one (sentinel mode).
    pub sentinel_password: Option<Secret>,
    /// Replicas that must acknowledge a cache eviction (`WAIT`) before it counts as delivered;
    /// 0 = do not wait. Set 1 with replicas and failover (cluster, sentinel): an eviction that a
    /// dying primary never replicated would otherwise come back with the promoted replica.
    /// Unacknowledged evictions are retried through the invalidation outbox meanwhile.
    pub wait_replicas: u8,
    pub password: Option<Secret>,
    /// 0..15.
    pub db: u8,
    /// No effect ([`NO_EFFECT`]): commands share one multiplexed connection per node.
    pub pool_size: usize,
    /// Bounds every connect and every command; a slower Redis counts as unavailable.
    pub timeout: ConfigDuration,
    /// No effect ([`NO_EFFECT`]).
    pub min_idle_conns: usize,
    /// No effect ([`NO_EFFECT`]).
    pub conn_max_idle_time: ConfigDuration,
    /// No effect ([`NO_EFFECT`]).
    pub conn_max_lifetime: ConfigDuration,
    pub tls: RedisTlsConfig,
    /// Prefix of every Redis key and channel (`<key_prefix>:v1:…`): deployments sharing one Redis
    /// need different prefixes.
    pub key_prefix: String,
    /// The in-process layer in front of Redis (`cache.type: redis`).
    pub local: LocalCacheConfig,
}

/// The small in-process layer (L1) in front of the Redis cache. Invalidation reaches it over
/// pub/sub on every node; a channel that stalls silently is noticed within the heartbeat lease
/// (`talos_cache::L1_LEASE`, 2 s), which bounds how long L1 may answer after a mutation on another
/// node. Off by default, so that by default no answer ever outlives a mutation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalCacheConfig {
    pub enabled: bool,
    pub ttl: ConfigDuration,
}

impl Default for LocalCacheConfig {
    fn default() -> Self {
        LocalCacheConfig {
            enabled: false,
            ttl: ConfigDuration::secs(10),
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            mode: RedisMode::Standalone,
            addrs: vec!["localhost:6379".into()],
            master_name: String::new(),
            sentinel_password: None,
            wait_replicas: 0,
            password: None,
            db: 0,
            pool_size: 100,
            timeout: ConfigDuration::secs(3),
            min_idle_conns: 2,
            conn_max_idle_time: ConfigDuration::secs(300),
            conn_max_lifetime: ConfigDuration::secs(1800),
            tls: RedisTlsConfig::default(),
            key_prefix: "talos".into(),
            local: LocalCacheConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisTlsConfig {
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub backend: RateLimitBackend,
    /// When the limiter is unreachable: false = allow (fail open), true = deny.
    pub fail_closed: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: false,
            backend: RateLimitBackend::Memory,
            fail_closed: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Maximum active keys per network; 0 = no cap.
    pub api_keys_max: u64,
}

/// The asynchronous `last_used_time` writer: verification hands a key to a bounded queue (never
/// waiting), workers write batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LastUsedConfig {
    /// Keys waiting to be written; when full, a key is not queued (and retried on a later use).
    pub queue_size: usize,
    /// Keys per write (one transaction).
    pub flush_size: usize,
    /// Longest a queued key waits for its batch to fill before it is written anyway.
    pub flush_interval: ConfigDuration,
    /// Writers working in parallel.
    pub num_workers: usize,
}

impl Default for LastUsedConfig {
    fn default() -> Self {
        LastUsedConfig {
            queue_size: 10_000,
            flush_size: 100,
            flush_interval: ConfigDuration::secs(30),
            num_workers: 4,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultitenancyConfig {
    pub enabled: bool,
    pub networks: Vec<NetworkConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub hostname: String,
    pub id: uuid::Uuid,
    /// A YAML overlay of this network's `credentials.*`, `secrets.*`, `rate_limit.enabled` and
    /// `cache.ttl` ([`apply_overlay`]); reloaded when it changes.
    #[serde(default)]
    pub config_path: Option<String>,
}
