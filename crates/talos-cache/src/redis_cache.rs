//! The shared cache: values in Redis (L2) under `<ns>:v1:k:{<nid>:<key>}`, an optional small
//! in-process layer (L1) in front, and cluster-wide invalidation over pub/sub.
//!
//! - `evict` is one script: it increments the key's eviction version (`<ns>:v1:ver:{…}`), deletes
//!   the value and publishes `<nid>:<key>` on `<ns>:v1:invalidate`; every instance evicts its L1
//!   on receipt. A `put` stores only while the version still equals the one its [`Ticket`] read
//!   before the database read, so a pre-mutation row is never stored after the mutation's
//!   eviction, whatever the delay (see [`Ticket`]).
//! - An eviction that cannot reach Redis fails; the caller records it durably and keeps the
//!   shared cache untrusted until it is delivered (talos-core's invalidation outbox).
//! - A dedicated subscriber task keeps one pub/sub connection, pings it every second and
//!   re-subscribes after any failure. While it is not subscribed, invalidations may be missed,
//!   so `get` answers [`CacheError::Unavailable`] (callers read the database) and L1 is emptied
//!   on every (re)connection. L1 entries are served only while the last ping answered recently
//!   ([`L1_LEASE`]): a channel that stalls silently stops L1 within that bound.
//! - Redis Cluster broadcasts a `PUBLISH` to the other nodes over its cluster bus, and Redis 7.0
//!   sends on its outgoing bus links with Nagle's algorithm on: about one message in fifty
//!   waits 20–40 ms for a delayed acknowledgement. So in cluster mode every instance also keeps
//!   one subscription per seed node (the fast path): the node that runs the eviction delivers
//!   to its own subscribers at once. The fast path only evicts sooner; trust still rests on the
//!   one subscription above (any node hears every message), so losing a fast-path connection
//!   changes nothing but speed.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::Script;
use redis::aio::{PubSubSink, PubSubStream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{CacheError, CacheKey, KeyCache, MemoryCache, Redis, Ticket};

const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often a cluster fast-path task asks a replica whether it has been promoted.
const ROLE_RECHECK: Duration = Duration::from_secs(5);
/// L1 answers only while the newest answered heartbeat was sent less than this long ago. A pong
/// proves every invalidation published before its ping was delivered, so a silently stalled
/// channel serves L1 entries for at most this long after its last good heartbeat.
pub const L1_LEASE: Duration = Duration::from_secs(2);
/// How long an eviction version outlives the eviction: far beyond any request's lifetime, so a
/// delayed put can never see a version that expired and came back equal.
const VERSION_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// SET unless the key was evicted since the ticket. KEYS[1] value key, KEYS[2] version key;
/// ARGV value, ttl ms, expected version.
const PUT_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[2]) or ''
if v ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Bump the version, drop the value, tell every node. KEYS[1] value key, KEYS[2] version key;
/// ARGV channel, message, version ttl ms.
const EVICT_SCRIPT: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
";

/// Connection state of the invalidation channel, shared with the subscriber task.
#[derive(Default)]
struct Bus {
    subscribed: AtomicBool,
    /// Bumped on every subscribe and every loss: an L1 insert prepared under another epoch is
    /// dropped.
    epoch: AtomicU64,
    connects: AtomicU64,
    received: AtomicU64,
    /// Messages received on the cluster fast path.
    fast_path_received: AtomicU64,
    /// Cluster fast-path subscriptions currently up (one per primary among the seed nodes).
    fast_paths: AtomicUsize,
    origin: OnceInstant,
    /// Milliseconds since `origin` at which the newest answered heartbeat was sent.
    alive_since_ms: AtomicU64,
}

/// `Instant::now()` at creation (`Default` for [`Bus`]).
struct OnceInstant(Instant);

impl Default for OnceInstant {
    fn default() -> Self {
        OnceInstant(Instant::now())
    }
}

impl Bus {
    fn now_ms(&self) -> u64 {
        self.origin.0.elapsed().as_millis() as u64
    }

    /// `t` in [`Bus::now_ms`]'s milliseconds.
    fn ms_at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin.0).as_millis() as u64
    }

    /// Whether L1 may answer: subscribed and heard from within [`L1_LEASE`].
    fn l1_trusted(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
            && self.now_ms()
                < self.alive_since_ms.load(Ordering::Acquire) + L1_LEASE.as_millis() as u64
    }
}

/// Redis as the verification cache, with an optional in-process L1.
pub struct RedisCache<V: Clone + Send + Sync + 'static> {
    redis: Redis,
    l1: Option<(MemoryCache<V>, Duration)>,
    bus: Arc<Bus>,
    put: Script,
    evict: Script,
    /// The invalidation subscriber, then the cluster fast-path subscribers.
    subscribers: Vec<tokio::task::AbortHandle>,
    _v: PhantomData<fn() -> V>,
}

impl<V: Clone + Send + Sync + 'static> Drop for RedisCache<V> {
    fn drop(&mut self) {
        for s in &self.subscribers {
            s.abort();
        }
    }
}

impl<V> RedisCache<V>
where
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    /// Starts the subscriber task (needs a Tokio runtime). `l1` is the in-process layer and the
    /// longest an entry may live there.
    pub fn new(redis: Redis, l1: Option<(MemoryCache<V>, Duration)>) -> Self {
        let bus = Arc::new(Bus::default());
        let local = l1.as_ref().map(|(c, _)| c.clone());
        let mut subscribers = vec![
            tokio::spawn(subscribe_loop(redis.clone(), local.clone(), bus.clone())).abort_handle(),
        ];
        // Without L1 there is nothing for the fast path to evict.
        if let Some(local) = local {
            subscribers.extend(redis.cluster_nodes().into_iter().map(|node| {
                tokio::spawn(fast_path_loop(
                    node,
                    redis.channel(),
                    local.clone(),
                    bus.clone(),
                ))
                .abort_handle()
            }));
        }
        RedisCache {
            redis,
            l1,
            bus,
            put: Script::new(PUT_SCRIPT),
            evict: Script::new(EVICT_SCRIPT),
            subscribers,
            _v: PhantomData,
        }
    }

    /// Whether the invalidation channel is subscribed (entries are trusted).
    pub fn is_connected(&self) -> bool {
        self.bus.subscribed.load(Ordering::Acquire)
    }

    /// Waits until subscribed, up to `limit`; returns whether it is.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// How many times the channel was (re)subscribed.
    pub fn connects(&self) -> u64 {
        self.bus.connects.load(Ordering::Acquire)
    }

    /// Invalidation messages received so far.
    pub fn invalidations_received(&self) -> u64 {
        self.bus.received.load(Ordering::Acquire)
    }

    /// Invalidation messages received on the cluster fast path (see the module docs).
    pub fn fast_path_received(&self) -> u64 {
        self.bus.fast_path_received.load(Ordering::Acquire)
    }

    /// Cluster fast-path subscriptions currently up: one per primary among the seed nodes.
    pub fn fast_path_connections(&self) -> usize {
        self.bus.fast_paths.load(Ordering::Acquire)
    }

    fn untrusted() -> CacheError {
        CacheError::Unavailable("cache invalidation channel is not subscribed".into())
    }
}

fn parse_message(payload: &[u8]) -> Option<CacheKey> {
    let s = std::str::from_utf8(payload).ok()?;
    let (nid, key) = s.split_once(':')?;
    Some(CacheKey::new(Uuid::parse_str(nid).ok()?, key))
}

async fn subscribe_loop<V: Clone + Send + Sync + 'static>(
    redis: Redis,
    l1: Option<MemoryCache<V>>,
    bus: Arc<Bus>,
) {
    let channel = redis.channel();
    let timeout = redis.timeout();
    let mut backoff = Duration::from_millis(50);
    let clear = |l1: &Option<MemoryCache<V>>| {
        if let Some(c) = l1 {
            c.clear();
        }
    };
    loop {
        let conn = tokio::time::timeout(timeout, redis.pubsub()).await;
        if let Ok(Ok(pubsub)) = conn {
            let (mut sink, mut stream) = pubsub.split();
            if let Ok(Ok(())) = tokio::time::timeout(timeout, sink.subscribe(&channel)).await {
                // Anything held from before may have missed invalidations.
                bus.epoch.fetch_add(1, Ordering::AcqRel);
                clear(&l1);
                bus.alive_since_ms.store(bus.now_ms(), Ordering::Release);
                bus.subscribed.store(true, Ordering::Release);
                bus.connects.fetch_add(1, Ordering::AcqRel);
                if bus.connects.load(Ordering::Acquire) > 1 {
                    tracing::info!("cache invalidation channel re-subscribed");
                }
                backoff = Duration::from_millis(50);
                serve(
                    &mut sink,
                    &mut stream,
                    l1.as_ref(),
                    &bus.received,
                    timeout,
                    |sent| {
                        bus.alive_since_ms
                            .fetch_max(bus.ms_at(sent), Ordering::AcqRel);
                    },
                )
                .await;
                bus.subscribed.store(false, Ordering::Release);
                bus.epoch.fetch_add(1, Ordering::AcqRel);
                clear(&l1);
                tracing::warn!(
                    "cache invalidation channel lost; reading from the database until it is back"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Serves one subscribed connection until it fails: each message evicts its key from `l1` and
/// counts in `received`; a ping goes out every [`HEARTBEAT`] and must be answered within
/// `timeout`, and `answered` is told when each answered ping was sent.
async fn serve<V: Clone + Send + Sync + 'static>(
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    l1: Option<&MemoryCache<V>>,
    received: &AtomicU64,
    timeout: Duration,
    answered: impl Fn(Instant),
) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(m) => {
                    if let (Some(k), Some(c)) = (parse_message(m.get_payload_bytes()), l1) {
                        c.evict_now(&k);
                    }
                    received.fetch_add(1, Ordering::AcqRel);
                }
                None => return,
            },
            _ = beat.tick() => {
                let sent = Instant::now();
                let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
                answered(sent);
            }
        }
    }
}

/// One cluster node's subscription on the fast path: evicts L1 entries as that node publishes
/// them, pings it every [`HEARTBEAT`] and reconnects after any failure. Trust never depends on it
/// (see the module docs).
async fn fast_path_loop<V: Clone + Send + Sync + 'static>(
    node: redis::Client,
    channel: String,
    l1: MemoryCache<V>,
    bus: Arc<Bus>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        // A replica only relays what the bus brings, as the main subscription does: only
        // primaries are worth a connection. A replica promoted later is picked up on a recheck.
        if !is_primary(&node).await {
            tokio::time::sleep(ROLE_RECHECK).await;
            continue;
        }
        if let Ok(Ok(pubsub)) = tokio::time::timeout(HEARTBEAT, node.get_async_pubsub()).await {
            let (mut sink, mut stream) = pubsub.split();
            if let Ok(Ok(())) = tokio::time::timeout(HEARTBEAT, sink.subscribe(&channel)).await {
                backoff = Duration::from_millis(50);
                bus.fast_paths.fetch_add(1, Ordering::AcqRel);
                serve(
                    &mut sink,
                    &mut stream,
                    Some(&l1),
                    &bus.fast_path_received,
                    HEARTBEAT,
                    |_| {},
                )
                .await;
                bus.fast_paths.fetch_sub(1, Ordering::AcqRel);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Whether `node` answers `ROLE` as a primary (within a heartbeat).
async fn is_primary(node: &redis::Client) -> bool {
    let role = async {
        let mut c = node.get_multiplexed_async_connection().await?;
        redis::cmd("ROLE")
            .query_async::<Vec<redis::Value>>(&mut c)
            .await
    };
    matches!(
        tokio::time::timeout(HEARTBEAT, role).await,
        Ok(Ok(r)) if matches!(r.first(), Some(redis::Value::BulkString(b)) if b == b"master")
    )
}

#[async_trait]
impl<V> KeyCache<V> for RedisCache<V>
where
    V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
{
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<V>, CacheError> {
        if !self.is_connected() {
            return Err(Self::untrusted());
        }
        let epoch = self.bus.epoch.load(Ordering::Acquire);
        let started = Instant::now();
        if self.bus.l1_trusted()
            && let Some(v) = self.l1.as_ref().and_then(|(l1, _)| l1.get_now(key))
        {
            return Ok(Some(v));
        }
        let k = &self.redis.key("k", key);
        let (bytes, pttl): (Option<Vec<u8>>, i64) = self
            .redis
            .exec(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(k)
                    .cmd("PTTL")
                    .arg(k)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let value: V = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                // Written by another version: a miss; the caller's put replaces it.
                tracing::debug!(error = %e, "undecodable cache entry ignored");
                return Ok(None);
            }
        };
        if let Some((l1, l1_ttl)) = &self.l1 {
            let ttl = Duration::from_millis(pttl.max(0) as u64).min(*l1_ttl);
            if self.is_connected() && self.bus.epoch.load(Ordering::Acquire) == epoch {
                l1.put_now(key, value.clone(), ttl, started);
            }
        }
        Ok(Some(value))
    }

    async fn ticket(&self, key: &CacheKey) -> Result<Ticket, CacheError> {
        if !self.is_connected() {
            return Err(Self::untrusted());
        }
        let ver = &self.redis.key("ver", key);
        let version: Option<String> = self
            .redis
            .exec(|mut c| async move { redis::cmd("GET").arg(ver).query_async(&mut c).await })
            .await?;
        Ok(Ticket::versioned(version.unwrap_or_default()))
    }

    async fn put(
        &self,
        key: &CacheKey,
        value: V,
        ttl: Duration,
        ticket: &Ticket,
    ) -> Result<bool, CacheError> {
        // A ticket from elsewhere carries no version: nothing proves the value is current.
        let Some(version) = ticket.version.as_deref() else {
            return Ok(false);
        };
        if ttl.is_zero() || !self.is_connected() {
            return Ok(false);
        }
        let epoch = self.bus.epoch.load(Ordering::Acquire);
        let bytes = serde_json::to_vec(&value)
            .map_err(|e| CacheError::Unavailable(format!("cache entry encoding: {e}")))?;
        let (k, ver) = (self.redis.key("k", key), self.redis.key("ver", key));
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let (k, ver, bytes) = (&k, &ver, &bytes);
        let script = &self.put;
        let stored: i64 = self
            .redis
            .exec(|mut c| async move {
                let mut inv = script.prepare_invoke();
                inv.key(k).key(ver).arg(bytes).arg(ttl_ms).arg(version);
                inv.invoke_async(&mut c).await
            })
            .await?;
        if let (1, Some((l1, l1_ttl))) = (stored, &self.l1)
            && self.is_connected()
            && self.bus.epoch.load(Ordering::Acquire) == epoch
        {
            l1.put_now(key, value, ttl.min(*l1_ttl), ticket.started());
        }
        Ok(stored == 1)
    }

    async fn evict(&self, key: &CacheKey) -> Result<(), CacheError> {
        if let Some((l1, _)) = &self.l1 {
            l1.evict_now(key);
        }
        let (k, ver) = (self.redis.key("k", key), self.redis.key("ver", key));
        let channel = self.redis.channel();
        let msg = format!("{}:{}", key.nid, key.key);
        let (k, ver, channel, msg) = (&k, &ver, &channel, &msg);
        let wait = self.redis.wait_replicas();
        if wait > 0 {
            // The eviction counts only once a replica has it: a primary that dies before
            // replicating it would otherwise come back (promoted replica) with the old entry and
            // the old version. Failing here hands it to the caller's durable retry.
            let wait_ms = (self.redis.timeout().as_millis() / 2).max(1) as u64;
            let (_, acked): (i64, i64) = self
                .redis
                .exec(|mut c| async move {
                    redis::pipe()
                        .cmd("EVAL")
                        .arg(EVICT_SCRIPT)
                        .arg(2)
                        .arg(k)
                        .arg(ver)
                        .arg(channel)
                        .arg(msg)
                        .arg(VERSION_TTL_MS)
                        .cmd("WAIT")
                        .arg(wait)
                        .arg(wait_ms)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if acked < i64::from(wait) {
                return Err(CacheError::Unavailable(format!(
                    "eviction acknowledged by {acked} of {wait} replicas"
                )));
            }
            return Ok(());
        }
        let script = &self.evict;
        self.redis
            .exec(|mut c| async move {
                let mut inv = script.prepare_invoke();
                inv.key(k)
                    .key(ver)
                    .arg(channel)
                    .arg(msg)
                    .arg(VERSION_TTL_MS);
                inv.invoke_async::<i64>(&mut c).await
            })
            .await
            .map(|_| ())
    }
}
