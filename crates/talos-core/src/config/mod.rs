//! The configuration tree: one typed tree, loaded once from a YAML file and `TALOS_*` environment
//! variables (see [`load`]), then passed explicitly.

mod fingerprint;
mod load;
mod reference;
mod types;

pub use fingerprint::config_hash;
pub use load::{ConfigError, ConfigSource, env_var_names, load, load_str, load_with_base};
pub use reference::reference_markdown;
pub use types::{ByteSize, ConfigDuration};

use serde::{Deserialize, Serialize};
use talos_secrets::{RetiredSecret, Secret};

pub use crate::admin_auth::{AdminAuthConfig, AdminTokenConfig};

/// The whole configuration. Every section is optional; defaults follow upstream except where
/// `decisions.md` overrides them (key prefix `talos`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub serve: ServeConfig,
    pub credentials: CredentialsConfig,
    pub secrets: SecretsConfig,
    pub db: DbConfig,
    pub cache: CacheConfig,
    pub rate_limit: RateLimitConfig,
    pub quota: QuotaConfig,
    pub last_used: LastUsedConfig,
    pub log: LogConfig,
    pub tracing: TracingConfig,
    pub multitenancy: MultitenancyConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub host: String,
    pub port: u16,
    pub trust_forwarded_host: bool,
    /// `CLIENT_IP_SOURCE_*` name; empty or UNSPECIFIED = the TCP peer address.
    pub client_ip_source: String,
    pub request_log: RequestLogConfig,
    pub cors: CorsConfig,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// Bearer tokens for `/v2alpha1/admin/*` (reloadable).
    pub admin_auth: AdminAuthConfig,
    /// Accepted `Host` names (421 otherwise); empty = loopback names on a loopback bind, else any.
    pub allowed_hosts: Vec<String>,
    /// Longest a request may take before it is answered 503 `DEADLINE_EXCEEDED`.
    pub request_timeout: ConfigDuration,
    /// Longest the request headers, and separately the body, may take to arrive.
    pub client_timeout: ConfigDuration,
    /// Requests in flight per worker beyond which new ones get 503 `OVERLOADED`; 0 = no limit.
    pub max_inflight: usize,
    /// After SIGTERM, how long the server keeps answering (readiness 503, `Connection: close`)
    /// before it stops accepting and finishes what is in flight.
    pub drain_time: ConfigDuration,
    /// HTTPS on the API port (both files or neither).
    pub tls: TlsConfig,
}

/// The API port's certificate pair, PEM files re-read when they change. Empty = plain HTTP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert_file: String,
    /// Private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

impl TlsConfig {
    /// True when both files are set (validation refuses one without the other).
    pub fn enabled(&self) -> bool {
        !self.cert_file.trim().is_empty() && !self.key_file.trim().is_empty()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "0.0.0.0".into(),
            port: 4420,
            trust_forwarded_host: false,
            client_ip_source: String::new(),
            request_log: RequestLogConfig::default(),
            cors: CorsConfig::default(),
            workers: 0,
            admin_auth: AdminAuthConfig::default(),
            allowed_hosts: Vec::new(),
            request_timeout: ConfigDuration::secs(15),
            client_timeout: ConfigDuration::secs(10),
            max_inflight: 1024,
            drain_time: ConfigDuration::secs(1),
            tls: TlsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLogConfig {
    pub exclude_health_endpoints: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    pub enabled: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: u64,
    pub debug: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            enabled: false,
            allowed_origins: vec!["*".into()],
            allowed_methods: ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: vec!["Authorization".into(), "Content-Type".into()],
            exposed_headers: vec!["Content-Type".into()],
            allow_credentials: false,
            max_age: 0,
            debug: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub host: String,
    pub port: u16,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            host: "0.0.0.0".into(),
            port: 4422,
        }
    }
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
    /// Accepted for compatibility; commands share one multiplexed connection per node.
    pub pool_size: usize,
    /// Bounds every connect and every command; a slower Redis counts as unavailable.
    pub timeout: ConfigDuration,
    /// Accepted for compatibility (see `pool_size`).
    pub min_idle_conns: usize,
    /// Accepted for compatibility (see `pool_size`).
    pub conn_max_idle_time: ConfigDuration,
    /// Accepted for compatibility (see `pool_size`).
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LastUsedConfig {
    pub queue_size: usize,
    pub flush_size: usize,
    pub flush_interval: ConfigDuration,
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    pub enabled: bool,
    pub service_name: String,
    pub exporter: String,
    pub endpoint: String,
    pub sample_rate: f64,
    pub service_version: String,
    pub environment: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            enabled: false,
            service_name: "talos".into(),
            exporter: "otlp".into(),
            endpoint: String::new(),
            sample_rate: 0.001,
            service_version: "0.0.0".into(),
            environment: "development".into(),
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
    #[serde(default)]
    pub config_path: Option<String>,
}
