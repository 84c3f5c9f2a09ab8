//! The shared cache: values in Redis (L2) under `<ns>:v1:k:<nid>:<key>`, an optional small
//! in-process layer (L1) in front, and cluster-wide invalidation over pub/sub.
//!
//! - `evict` writes a tombstone in Redis (refusing re-inserts for [`TOMBSTONE_TTL`]) and publishes
//!   `<nid>:<key>` on `<ns>:v1:invalidate`; every instance evicts its L1 on receipt.
//! - A dedicated subscriber task keeps one pub/sub connection, pings it every second and
//!   re-subscribes after any failure. While it is not subscribed, invalidations may be missed,
//!   so `get` answers [`CacheError::Unavailable`] (callers read the database) and L1 is emptied
//!   on every (re)connection.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{CacheError, CacheKey, KeyCache, MemoryCache, Redis, TOMBSTONE_TTL};

/// Stored instead of a value by `evict`; never valid JSON, so never mistaken for one.
const TOMBSTONE: &[u8] = b"\x00tombstone";
const HEARTBEAT: Duration = Duration::from_secs(1);

/// SET unless the key holds a tombstone. KEYS[1] key; ARGV value, ttl ms, tombstone.
const PUT_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
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
}

/// Redis as the verification cache, with an optional in-process L1.
pub struct RedisCache<V: Clone + Send + Sync + 'static> {
    redis: Redis,
    l1: Option<(MemoryCache<V>, Duration)>,
    bus: Arc<Bus>,
    put: Script,
    subscriber: tokio::task::AbortHandle,
    _v: PhantomData<fn() -> V>,
}

impl<V: Clone + Send + Sync + 'static> Drop for RedisCache<V> {
    fn drop(&mut self) {
        self.subscriber.abort();
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
        let subscriber = tokio::spawn(subscribe_loop(
            redis.clone(),
            l1.as_ref().map(|(c, _)| c.clone()),
            bus.clone(),
        ))
        .abort_handle();
        RedisCache {
            redis,
            l1,
            bus,
            put: Script::new(PUT_SCRIPT),
            subscriber,
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

    fn untrusted() -> CacheError {
        CacheError::Unavailable("cache invalidation channel is not subscribed".into())
    }

    async fn publish_eviction(&self, key: &CacheKey) -> Result<(), CacheError> {
        publish(&self.redis, key).await
    }
}

async fn publish(redis: &Redis, key: &CacheKey) -> Result<(), CacheError> {
    let k = redis.key("k", key);
    let channel = redis.channel();
    let msg = format!("{}:{}", key.nid, key.key);
    let tomb_ms = TOMBSTONE_TTL.as_millis() as u64;
    redis
        .exec(|mut c| async move {
            redis::pipe()
                .cmd("SET")
                .arg(&k)
                .arg(TOMBSTONE)
                .arg("PX")
                .arg(tomb_ms)
                .ignore()
                .cmd("PUBLISH")
                .arg(&channel)
                .arg(&msg)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
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
        let conn = tokio::time::timeout(timeout, redis.client().get_async_pubsub()).await;
        if let Ok(Ok(pubsub)) = conn {
            let (mut sink, mut stream) = pubsub.split();
            if let Ok(Ok(())) = tokio::time::timeout(timeout, sink.subscribe(&channel)).await {
                // Anything held from before may have missed invalidations.
                bus.epoch.fetch_add(1, Ordering::AcqRel);
                clear(&l1);
                bus.subscribed.store(true, Ordering::Release);
                bus.connects.fetch_add(1, Ordering::AcqRel);
                if bus.connects.load(Ordering::Acquire) > 1 {
                    tracing::info!("cache invalidation channel re-subscribed");
                }
                backoff = Duration::from_millis(50);
                let mut beat = tokio::time::interval(HEARTBEAT);
                beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(m) => {
                                if let (Some(k), Some(c)) = (parse_message(m.get_payload_bytes()), &l1) {
                                    c.evict_now(&k);
                                }
                                bus.received.fetch_add(1, Ordering::AcqRel);
                            }
                            None => break,
                        },
                        _ = beat.tick() => {
                            let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                            if !matches!(pong, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
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
        if let Some(v) = self.l1.as_ref().and_then(|(l1, _)| l1.get_now(key)) {
            return Ok(Some(v));
        }
        let k = self.redis.key("k", key);
        let (bytes, pttl): (Option<Vec<u8>>, i64) = self
            .redis
            .exec(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&k)
                    .cmd("PTTL")
                    .arg(&k)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(bytes) = bytes.filter(|b| b != TOMBSTONE) else {
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
                l1.put_now(key, value.clone(), ttl);
            }
        }
        Ok(Some(value))
    }

    async fn put(&self, key: &CacheKey, value: V, ttl: Duration) -> Result<(), CacheError> {
        if ttl.is_zero() || !self.is_connected() {
            return Ok(());
        }
        let epoch = self.bus.epoch.load(Ordering::Acquire);
        let bytes = serde_json::to_vec(&value)
            .map_err(|e| CacheError::Unavailable(format!("cache entry encoding: {e}")))?;
        let k = self.redis.key("k", key);
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let script = &self.put;
        let stored: i64 = self
            .redis
            .exec(|mut c| async move {
                let mut inv = script.prepare_invoke();
                inv.key(&k).arg(bytes).arg(ttl_ms).arg(TOMBSTONE);
                inv.invoke_async(&mut c).await
            })
            .await?;
        if let (1, Some((l1, l1_ttl))) = (stored, &self.l1)
            && self.is_connected()
            && self.bus.epoch.load(Ordering::Acquire) == epoch
        {
            l1.put_now(key, value, ttl.min(*l1_ttl));
        }
        Ok(())
    }

    async fn evict(&self, key: &CacheKey) -> Result<(), CacheError> {
        if let Some((l1, _)) = &self.l1 {
            l1.evict_now(key);
        }
        match self.publish_eviction(key).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Keep trying in the background: other nodes must learn of it once Redis is back.
                let (redis, key) = (self.redis.clone(), key.clone());
                tokio::spawn(async move {
                    for _ in 0..60 {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if publish(&redis, &key).await.is_ok() {
                            return;
                        }
                    }
                    tracing::error!(
                        "cache eviction could not reach Redis for 30 s; other nodes may serve the entry until its TTL"
                    );
                });
                Err(e)
            }
        }
    }
}
