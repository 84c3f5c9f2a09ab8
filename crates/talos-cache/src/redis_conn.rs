//! One Redis connection setup shared by the cache, the invalidation channel and the limiter.
//! No `redis` type leaves this crate: failures become [`CacheError::Unavailable`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{
    Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisResult,
    aio::ConnectionManagerConfig,
};

use crate::{CacheError, CacheKey};

/// How long commands fail fast after a failure before one is let through again.
const BREAKER_OPEN: Duration = Duration::from_millis(500);

/// Where and how to reach Redis (`cache.redis.*`).
#[derive(Clone)]
pub struct RedisSettings {
    /// `host:port` entries; the first one is used (one primary; no Cluster or Sentinel).
    pub addrs: Vec<String>,
    pub password: Option<String>,
    pub db: u8,
    /// Bounds every connect and every command.
    pub timeout: Duration,
    pub tls: bool,
    /// Prefix of every key and channel (`<namespace>:v1:…`), so deployments or tests can share a
    /// Redis without seeing each other.
    pub namespace: String,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("addrs", &self.addrs)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("db", &self.db)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl RedisSettings {
    /// Settings from a `redis://[:password@]host:port[/db]` (or `rediss://`) URL, as the tests'
    /// `TALOS_TEST_REDIS_URL`.
    pub fn from_url(url: &str, namespace: &str) -> Result<RedisSettings, CacheError> {
        let bad = || CacheError::Unavailable(format!("not a redis:// URL: {url:?}"));
        let (tls, rest) = if let Some(r) = url.strip_prefix("rediss://") {
            (true, r)
        } else {
            (false, url.strip_prefix("redis://").ok_or_else(bad)?)
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (host, db) = match rest.split_once('/') {
            Some((h, d)) if !d.is_empty() => (h, d.parse().map_err(|_| bad())?),
            Some((h, _)) => (h, 0),
            None => (rest, 0),
        };
        let password = auth
            .map(|a| a.split_once(':').map_or(a, |(_, p)| p).to_string())
            .filter(|p| !p.is_empty());
        Ok(RedisSettings {
            addrs: vec![host.to_string()],
            password,
            db,
            timeout: Duration::from_secs(3),
            tls,
            namespace: namespace.to_string(),
        })
    }
}

fn parse_addr(addr: &str) -> Result<(String, u16), CacheError> {
    let bad = || CacheError::Unavailable(format!("cache.redis.addrs: invalid address {addr:?}"));
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, p.parse::<u16>().map_err(|_| bad())?),
        _ => (addr, 6379),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// A cheap-to-clone handle: a lazily connecting, self-reconnecting command connection plus what
/// is needed to open dedicated pub/sub connections.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    manager: ConnectionManager,
    timeout: Duration,
    namespace: String,
    origin: Instant,
    /// Milliseconds since `origin` until which commands fail fast.
    open_until: AtomicU64,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Prepares the connection without waiting for Redis: a server that starts while Redis is
    /// down still serves (from the database). Must run inside a Tokio runtime.
    pub fn connect(s: &RedisSettings) -> Result<Redis, CacheError> {
        let first = s
            .addrs
            .first()
            .ok_or_else(|| CacheError::Unavailable("cache.redis.addrs is empty".into()))?;
        if s.addrs.len() > 1 {
            tracing::warn!(
                "cache.redis.addrs lists {} addresses; only the first ({first}) is used",
                s.addrs.len()
            );
        }
        let (host, port) = parse_addr(first)?;
        let addr = if s.tls {
            // Redis TLS uses rustls: make sure a crypto provider is installed (first one wins).
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        };
        let mut redis = RedisConnectionInfo::default().set_db(i64::from(s.db));
        if let Some(p) = &s.password {
            redis = redis.set_password(p);
        }
        let unavailable = |e: redis::RedisError| CacheError::Unavailable(e.to_string());
        let info = addr
            .into_connection_info()
            .map_err(unavailable)?
            .set_redis_settings(redis);
        let client = Client::open(info).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(s.timeout))
            .set_response_timeout(Some(s.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)?;
        Ok(Redis {
            inner: Arc::new(Inner {
                client,
                manager,
                timeout: s.timeout,
                namespace: s.namespace.clone(),
                origin: Instant::now(),
                open_until: AtomicU64::new(0),
            }),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// `<namespace>:v1:<kind>:{<nid>:<key>}`. The braces are a Redis Cluster hash tag: every
    /// kind of record about one key (value, eviction version, limiter state) lands in one slot,
    /// so a script may touch several of them.
    pub(crate) fn key(&self, kind: &str, k: &CacheKey) -> String {
        format!("{}:v1:{kind}:{{{}:{}}}", self.inner.namespace, k.nid, k.key)
    }

    pub(crate) fn channel(&self) -> String {
        format!("{}:v1:invalidate", self.inner.namespace)
    }

    fn now_ms(&self) -> u64 {
        self.inner.origin.elapsed().as_millis() as u64
    }

    /// Runs one command (or pipeline, or script) with the timeout; failures trip a short circuit
    /// breaker so that an unreachable Redis costs one slow request, not every request.
    pub(crate) async fn exec<T, F, Fut>(&self, f: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.now_ms() < self.inner.open_until.load(Ordering::Relaxed) {
            return Err(CacheError::Unavailable("redis: recent failure".into()));
        }
        let res = tokio::time::timeout(self.inner.timeout, f(self.inner.manager.clone())).await;
        let err = match res {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !is_connection_error(&e) => {
                return Err(CacheError::Unavailable(format!("redis: {e}")));
            }
            Ok(Err(e)) => format!("redis: {e}"),
            Err(_) => format!("redis: no answer within {:?}", self.inner.timeout),
        };
        self.inner.open_until.store(
            self.now_ms() + BREAKER_OPEN.as_millis() as u64,
            Ordering::Relaxed,
        );
        Err(CacheError::Unavailable(err))
    }

    /// Round trip to Redis (readiness checks, tests).
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.exec(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}
