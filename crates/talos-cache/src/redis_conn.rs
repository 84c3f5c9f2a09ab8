//! One Redis connection setup shared by the cache, the invalidation channel and the limiter.
//! No `redis` type leaves this crate: failures become [`CacheError::Unavailable`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection, PubSub};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    RedisConnectionInfo, RedisFuture, RedisResult, TlsMode, aio::ConnectionManagerConfig,
    io::tcp::TcpSettings,
};

use crate::{CacheError, CacheKey};

/// How long commands fail fast after a failure before one is let through again.
const BREAKER_OPEN: Duration = Duration::from_millis(500);

/// How Redis is deployed (`cache.redis.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedisMode {
    /// One server (or a proxy in front of several): the first of `addrs`.
    #[default]
    Standalone,
    /// Redis Cluster: `addrs` are seed nodes; the client library follows the slot map, MOVED/ASK
    /// redirections and failovers.
    Cluster,
    /// Sentinel-managed primary: `addrs` are the sentinels, `master_name` the monitored set; the
    /// primary is looked up again after every connection failure or READONLY answer.
    Sentinel,
}

/// Where and how to reach Redis (`cache.redis.*`).
#[derive(Clone)]
pub struct RedisSettings {
    pub mode: RedisMode,
    /// `host:port` entries: the server (standalone, first entry), seed nodes (cluster), or the
    /// sentinels (sentinel).
    pub addrs: Vec<String>,
    pub password: Option<String>,
    pub db: u8,
    /// Bounds every connect and every command.
    pub timeout: Duration,
    pub tls: bool,
    /// Prefix of every key and channel (`<namespace>:v1:…`), so deployments or tests can share a
    /// Redis without seeing each other.
    pub namespace: String,
    /// The sentinels' monitored master name (sentinel mode).
    pub master_name: String,
    /// Password of the sentinels themselves, when they require one (sentinel mode).
    pub sentinel_password: Option<String>,
    /// Replicas that must acknowledge an eviction (`WAIT`) before it counts as delivered; 0 = do
    /// not wait. With replicas and failover, 1 keeps an eviction from being lost with a primary
    /// that dies before replicating it (an unacknowledged eviction fails and is redelivered).
    pub wait_replicas: u8,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("mode", &self.mode)
            .field("addrs", &self.addrs)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("db", &self.db)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .field("namespace", &self.namespace)
            .field("master_name", &self.master_name)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "[redacted]"),
            )
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

impl RedisSettings {
    /// Standalone settings from a `redis://[:password@]host:port[/db]` (or `rediss://`) URL, as
    /// the tests' `TALOS_TEST_REDIS_URL`.
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
            mode: RedisMode::Standalone,
            addrs: vec![host.to_string()],
            password,
            db,
            timeout: Duration::from_secs(3),
            tls,
            namespace: namespace.to_string(),
            master_name: String::new(),
            sentinel_password: None,
            wait_replicas: 0,
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

fn addr_of(s: &RedisSettings, addr: &str) -> Result<ConnectionAddr, CacheError> {
    let (host, port) = parse_addr(addr)?;
    Ok(if s.tls {
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
    })
}

/// Every connection to Redis turns Nagle's algorithm off. The redis crate leaves it on by
/// default (1.x), and a small command written while an earlier segment waits for its
/// acknowledgement then waits for the server's delayed ACK: tens of milliseconds on a cache
/// read, a limiter script or an eviction.
fn tcp() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

fn unavailable(e: redis::RedisError) -> CacheError {
    CacheError::Unavailable(e.to_string())
}

/// Connection info of one data node (standalone server or cluster node).
fn node_info(s: &RedisSettings, addr: &str, db: u8) -> Result<ConnectionInfo, CacheError> {
    let mut redis = RedisConnectionInfo::default().set_db(i64::from(db));
    if let Some(p) = &s.password {
        redis = redis.set_password(p);
    }
    Ok(addr_of(s, addr)?
        .into_connection_info()
        .map_err(unavailable)?
        .set_redis_settings(redis)
        .set_tcp_settings(tcp()))
}

/// A cheap-to-clone handle over one of the deployment kinds: a lazily connecting,
/// self-reconnecting command connection plus what is needed to open dedicated pub/sub
/// connections. Commands run through [`Redis::exec`], whatever the kind.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    timeout: Duration,
    namespace: String,
    wait_replicas: u8,
    origin: Instant,
    /// Milliseconds since `origin` until which commands fail fast.
    open_until: AtomicU64,
}

enum Backend {
    Standalone {
        client: Client,
        manager: ConnectionManager,
    },
    Cluster {
        conn: ClusterConnection,
        /// One client per seed node, for the invalidation subscriber: classic pub/sub messages
        /// are broadcast to every node of a cluster, so any one node hears all of them.
        nodes: Vec<Client>,
        next_sub: AtomicUsize,
    },
    Sentinel(Box<SentinelBackend>),
}

struct SentinelBackend {
    sentinel: tokio::sync::Mutex<Sentinel>,
    node: SentinelNodeConnectionInfo,
    master_name: String,
    config: AsyncConnectionConfig,
    /// The connection to the current primary; dropped on any connection failure or READONLY
    /// answer (a demoted primary), so the next command asks the sentinels again.
    conn: RwLock<Option<MultiplexedConnection>>,
}

impl SentinelBackend {
    async fn master(&self) -> RedisResult<Client> {
        let mut sentinel = self.sentinel.lock().await;
        sentinel
            .async_master_for(&self.master_name, Some(&self.node))
            .await
    }

    async fn conn(&self) -> RedisResult<(MultiplexedConnection, bool)> {
        if let Some(c) = self.conn.read().expect("not poisoned").as_ref() {
            return Ok((c.clone(), true));
        }
        let conn = self
            .master()
            .await?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *self.conn.write().expect("not poisoned") = Some(conn.clone());
        Ok((conn, false))
    }

    fn reset(&self) {
        *self.conn.write().expect("not poisoned") = None;
    }
}

/// The connection a command runs on; implements the redis crate's `ConnectionLike`, so commands,
/// pipelines and scripts are written once for every deployment kind.
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
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
        let backend = match s.mode {
            RedisMode::Standalone => {
                if s.addrs.len() > 1 {
                    tracing::warn!(
                        "cache.redis.addrs lists {} addresses in standalone mode; only the first \
                         ({first}) is used",
                        s.addrs.len()
                    );
                }
                let client = Client::open(node_info(s, first, s.db)?).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(s.timeout))
                    .set_response_timeout(Some(s.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map_err(unavailable)?;
                Backend::Standalone { client, manager }
            }
            RedisMode::Cluster => {
                if s.db != 0 {
                    return Err(CacheError::Unavailable(
                        "cache.redis.db must be 0 in cluster mode".into(),
                    ));
                }
                let infos = s
                    .addrs
                    .iter()
                    .map(|a| node_info(s, a, 0))
                    .collect::<Result<Vec<_>, _>>()?;
                let nodes = infos
                    .iter()
                    .map(|i| Client::open(i.clone()).map_err(unavailable))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut builder = ClusterClient::builder(infos)
                    .connection_timeout(s.timeout)
                    .response_timeout(s.timeout)
                    .retries(3)
                    .max_retry_wait(500)
                    .tcp_settings(tcp());
                if let Some(p) = &s.password {
                    builder = builder.password(p);
                }
                if s.tls {
                    builder = builder.tls(TlsMode::Secure);
                }
                let client = builder.build().map_err(unavailable)?;
                let conn = client.get_pending_async_connection_with_config(ClusterConfig::new());
                Backend::Cluster {
                    conn,
                    nodes,
                    next_sub: AtomicUsize::new(0),
                }
            }
            RedisMode::Sentinel => {
                if s.master_name.is_empty() {
                    return Err(CacheError::Unavailable(
                        "cache.redis.master_name is required in sentinel mode".into(),
                    ));
                }
                let sentinels = s
                    .addrs
                    .iter()
                    .map(|a| {
                        let mut redis = RedisConnectionInfo::default();
                        if let Some(p) = &s.sentinel_password {
                            redis = redis.set_password(p);
                        }
                        Ok(addr_of(s, a)?
                            .into_connection_info()
                            .map_err(unavailable)?
                            .set_redis_settings(redis)
                            .set_tcp_settings(tcp()))
                    })
                    .collect::<Result<Vec<_>, CacheError>>()?;
                let sentinel = Sentinel::build(sentinels).map_err(unavailable)?;
                let mut redis = RedisConnectionInfo::default().set_db(i64::from(s.db));
                if let Some(p) = &s.password {
                    redis = redis.set_password(p);
                }
                let mut node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(redis)
                    .set_tcp_settings(tcp());
                if s.tls {
                    node = node.set_tls_mode(TlsMode::Secure);
                }
                Backend::Sentinel(Box::new(SentinelBackend {
                    sentinel: tokio::sync::Mutex::new(sentinel),
                    node,
                    master_name: s.master_name.clone(),
                    config: AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(s.timeout))
                        .set_response_timeout(Some(s.timeout)),
                    conn: RwLock::new(None),
                }))
            }
        };
        Ok(Redis {
            inner: Arc::new(Inner {
                backend,
                timeout: s.timeout,
                namespace: s.namespace.clone(),
                wait_replicas: s.wait_replicas,
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

    pub(crate) fn wait_replicas(&self) -> u8 {
        self.inner.wait_replicas
    }

    /// A fresh pub/sub connection: to the server (standalone), to the current primary
    /// (sentinel), or to the next seed node in turn (cluster; every node hears every message).
    pub(crate) async fn pubsub(&self) -> RedisResult<PubSub> {
        match &self.inner.backend {
            Backend::Standalone { client, .. } => client.get_async_pubsub().await,
            Backend::Cluster {
                nodes, next_sub, ..
            } => {
                let i = next_sub.fetch_add(1, Ordering::Relaxed) % nodes.len();
                nodes[i].get_async_pubsub().await
            }
            Backend::Sentinel(s) => s.master().await?.get_async_pubsub().await,
        }
    }

    /// The seed nodes' clients in cluster mode (else none), for the invalidation fast path:
    /// one extra pub/sub connection per node (see `redis_cache`).
    pub(crate) fn cluster_nodes(&self) -> Vec<Client> {
        match &self.inner.backend {
            Backend::Cluster { nodes, .. } => nodes.clone(),
            _ => Vec::new(),
        }
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

    /// The connection to run a command on, and whether it is a sentinel connection kept from
    /// before (which may have died with a failover; the others reconnect by themselves).
    async fn conn(&self) -> RedisResult<(Conn, bool)> {
        Ok(match &self.inner.backend {
            Backend::Standalone { manager, .. } => (Conn::Single(manager.clone()), false),
            Backend::Cluster { conn, .. } => (Conn::Cluster(conn.clone()), false),
            Backend::Sentinel(s) => {
                let (c, cached) = s.conn().await?;
                (Conn::Sentinel(c), cached)
            }
        })
    }

    /// Runs one command (or pipeline, or script) with the timeout; failures trip a short circuit
    /// breaker so that an unreachable Redis costs one slow request, not every request.
    pub(crate) async fn exec<T, F, Fut>(&self, f: F) -> Result<T, CacheError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.now_ms() < self.inner.open_until.load(Ordering::Relaxed) {
            return Err(CacheError::Unavailable("redis: recent failure".into()));
        }
        let run = async {
            let (conn, cached) = self.conn().await?;
            match f(conn).await {
                // After a failover the kept connection to the old primary is dead: the first
                // command notices, so it runs again once on the new primary rather than failing
                // (and opening the breaker) on every node's first command.
                Err(e) if cached && is_connection_error(&e) => {
                    if let Backend::Sentinel(s) = &self.inner.backend {
                        s.reset();
                    }
                    f(self.conn().await?.0).await
                }
                r => r,
            }
        };
        let res = tokio::time::timeout(self.inner.timeout, run).await;
        let err = match res {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !is_connection_error(&e) && !is_demoted(&e) => {
                return Err(CacheError::Unavailable(format!("redis: {e}")));
            }
            Ok(Err(e)) => format!("redis: {e}"),
            Err(_) => format!("redis: no answer within {:?}", self.inner.timeout),
        };
        if let Backend::Sentinel(s) = &self.inner.backend {
            s.reset();
        }
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

/// A write refused by a node that is no longer the primary (after a failover).
fn is_demoted(e: &redis::RedisError) -> bool {
    e.code() == Some("READONLY")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nagle stays off on every data connection, whatever the deployment kind: the library's
    /// default would hold a small command back for the server's delayed acknowledgement.
    #[test]
    fn every_connection_turns_nagle_off() {
        let mut s = RedisSettings::from_url("redis://127.0.0.1:6379", "t").unwrap();
        assert!(
            node_info(&s, "127.0.0.1:6379", 0)
                .unwrap()
                .tcp_settings()
                .nodelay()
        );
        s.tls = true;
        assert!(
            node_info(&s, "localhost:6380", 0)
                .unwrap()
                .tcp_settings()
                .nodelay()
        );
        assert!(tcp().nodelay());
    }
}
