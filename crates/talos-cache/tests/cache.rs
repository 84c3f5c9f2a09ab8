//! Contract suite for every cache backend: the same cases run against each. Memory always;
//! Redis and Redis with an in-process L1 when `TALOS_TEST_REDIS_URL` is set (each test in its own
//! random key namespace, so tests can run in parallel on one Redis).

use std::time::Duration;

use talos_cache::{
    CacheError, CacheKey, KeyCache, MemoryCache, NoopCache, Redis, RedisCache, RedisSettings,
    Ticket,
};
use talos_test_support::{StallProxy, redis_url};
use uuid::Uuid;

mod common;
use common::{contract, put};

fn memory() -> MemoryCache<String> {
    MemoryCache::new(1 << 20, |v: &String| v.len() as u32)
}

fn namespace() -> String {
    format!("talos-test-{}", Uuid::new_v4().simple())
}

fn settings(url: &str, ns: &str) -> RedisSettings {
    let mut s = RedisSettings::from_url(url, ns).unwrap();
    s.timeout = Duration::from_secs(2);
    s
}

/// A Redis cache in namespace `ns`; with `l1`, an in-process layer whose entries live long
/// (60 s), so that only invalidation can remove them within a test.
async fn redis_cache(url: &str, ns: &str, l1: bool) -> RedisCache<String> {
    let redis = Redis::connect(&settings(url, ns)).unwrap();
    let l1 = l1.then(|| (memory(), Duration::from_secs(60)));
    let c = RedisCache::new(redis, l1);
    assert!(
        c.wait_connected(Duration::from_secs(10)).await,
        "subscribes to the invalidation channel"
    );
    c
}

#[tokio::test]
async fn memory_cache_contract() {
    contract(&memory()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_cache_contract() {
    let Some(url) = redis_url() else { return };
    let ns = namespace();
    contract(&redis_cache(&url, &ns, false).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn layered_redis_cache_contract() {
    let Some(url) = redis_url() else { return };
    let ns = namespace();
    let c = redis_cache(&url, &ns, true).await;
    contract(&c).await;
    assert_eq!(c.kind(), "redis");
}

#[tokio::test]
async fn noop_cache_never_hits() {
    let c = NoopCache;
    let k = CacheKey::new(Uuid::nil(), "k");
    assert!(!put(&c, &k, "v", Duration::from_secs(60)).await);
    assert_eq!(KeyCache::<String>::get(&c, &k).await.unwrap(), None);
}

#[tokio::test]
async fn memory_cache_is_bounded() {
    let c = MemoryCache::<String>::new(10_000, |v: &String| v.len() as u32);
    for i in 0..1000 {
        put(
            &c,
            &CacheKey::new(Uuid::nil(), format!("k{i}")),
            &"x".repeat(100),
            Duration::from_secs(60),
        )
        .await;
    }
    assert!(
        c.entry_count() < 100,
        "{} entries exceed the byte bound",
        c.entry_count()
    );
}

#[tokio::test]
async fn memory_tombstones_expire() {
    let c = MemoryCache::<String>::with_tombstone_ttl(
        1 << 20,
        |v| v.len() as u32,
        Duration::from_millis(50),
    );
    let k = CacheKey::new(Uuid::nil(), "k");
    // A reader starts (ticket), a mutation evicts, and the reader stalls past the tombstone's
    // life: its pre-mutation value must still be refused (regression: it was stored).
    let stale = c.ticket(&k).await.unwrap();
    c.evict(&k).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !c.put(&k, "stale".into(), Duration::from_secs(60), &stale)
            .await
            .unwrap()
    );
    assert_eq!(c.get(&k).await.unwrap(), None);
    // Once the tombstone is gone, a reader that started after the eviction stores.
    assert!(put(&c, &k, "v", Duration::from_secs(60)).await);
    assert_eq!(c.get(&k).await.unwrap().as_deref(), Some("v"));
}

/// Waits until `cond` holds, up to 5 s (eventual delivery; not a latency assertion).
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread")]
async fn eviction_on_one_instance_evicts_the_l1_of_another() {
    let Some(url) = redis_url() else { return };
    let ns = namespace();
    let (a, b) = (
        redis_cache(&url, &ns, true).await,
        redis_cache(&url, &ns, true).await,
    );
    let k = CacheKey::new(Uuid::new_v4(), "key");
    assert!(put(&a, &k, "v1", Duration::from_secs(600)).await);
    assert_eq!(
        b.get(&k).await.unwrap().as_deref(),
        Some("v1"),
        "B reads through and fills its L1"
    );
    let before = b.invalidations_received();
    a.evict(&k).await.unwrap();
    assert!(
        eventually(|| b.invalidations_received() > before).await,
        "B receives the invalidation"
    );
    // B's L1 entry (60 s TTL) is gone: B answers from Redis, which no longer has the value.
    assert_eq!(b.get(&k).await.unwrap(), None);
    assert_eq!(a.get(&k).await.unwrap(), None);
    // Other namespaces hear nothing.
    let other = redis_cache(&url, &namespace(), true).await;
    a.evict(&k).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(other.invalidations_received(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_redis_is_unavailable_never_a_hit() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there any more.
    let mut s =
        RedisSettings::from_url(&format!("redis://127.0.0.1:{closed}"), &namespace()).unwrap();
    s.timeout = Duration::from_millis(500);
    let c: RedisCache<String> = RedisCache::new(
        Redis::connect(&s).unwrap(),
        Some((memory(), Duration::from_secs(60))),
    );
    let k = CacheKey::new(Uuid::new_v4(), "k");
    assert!(matches!(
        c.ticket(&k).await,
        Err(CacheError::Unavailable(_))
    ));
    assert!(
        !c.put(&k, "v".into(), Duration::from_secs(60), &Ticket::local())
            .await
            .unwrap()
    );
    assert!(matches!(c.get(&k).await, Err(CacheError::Unavailable(_))));
    assert!(matches!(c.evict(&k).await, Err(CacheError::Unavailable(_))));
    assert!(!c.is_connected());
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_redis_distrusts_l1_until_back() {
    let Some(url) = redis_url() else { return };
    let ns = namespace();
    let direct = settings(&url, &ns);
    // Cut drops every connection and refuses new ones; Redis keeps its data.
    let proxy = StallProxy::start(&direct.addrs[0]).await.unwrap();
    let mut via = direct.clone();
    via.addrs = vec![proxy.addr.to_string()];
    let a: RedisCache<String> = RedisCache::new(
        Redis::connect(&via).unwrap(),
        Some((memory(), Duration::from_secs(60))),
    );
    assert!(a.wait_connected(Duration::from_secs(10)).await);
    let b = redis_cache(&url, &ns, true).await;
    let k = CacheKey::new(Uuid::new_v4(), "key");
    assert!(put(&a, &k, "v1", Duration::from_secs(600)).await);
    assert_eq!(a.get(&k).await.unwrap().as_deref(), Some("v1"));

    proxy.cut();
    assert!(
        eventually(|| !a.is_connected()).await,
        "A notices the lost subscription"
    );
    assert!(
        matches!(a.get(&k).await, Err(CacheError::Unavailable(_))),
        "A no longer trusts its L1"
    );
    // While A is cut off, B evicts the key: A misses that message.
    b.evict(&k).await.unwrap();
    assert!(matches!(a.get(&k).await, Err(CacheError::Unavailable(_))));

    proxy.restore();
    assert!(
        a.wait_connected(Duration::from_secs(10)).await,
        "A re-subscribes"
    );
    assert!(a.connects() >= 2);
    // The command connection may need a moment to reconnect too; A must never answer v1.
    let mut fresh = false;
    for _ in 0..100 {
        match a.get(&k).await {
            Ok(v) => {
                assert_eq!(v, None, "A's L1 was emptied on reconnection: no stale v1");
                fresh = true;
                break;
            }
            Err(CacheError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(fresh, "A answers from Redis again");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_survives_its_heartbeats() {
    let Some(url) = redis_url() else { return };
    let c = redis_cache(&url, &namespace(), true).await;
    // The subscriber pings its connection every second; a healthy one is never re-established.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(c.is_connected());
    assert_eq!(c.connects(), 1, "no reconnection while Redis is healthy");
}

/// Redis: a put carrying a ticket taken before an eviction is refused however late it arrives
/// (regression: the tombstone expired after 10 s and a stalled reader's put then succeeded), and a
/// reader that started after the eviction stores at once.
#[tokio::test(flavor = "multi_thread")]
async fn redis_put_with_a_pre_eviction_ticket_is_refused_forever() {
    let Some(url) = redis_url() else { return };
    let c = redis_cache(&url, &namespace(), false).await;
    let k = CacheKey::new(Uuid::new_v4(), "key");
    let hour = Duration::from_secs(3600);
    let stale = c.ticket(&k).await.unwrap();
    c.evict(&k).await.unwrap();
    let fresh = c.ticket(&k).await.unwrap();
    c.evict(&CacheKey::new(Uuid::new_v4(), "other"))
        .await
        .unwrap();
    assert!(!c.put(&k, "stale".into(), hour, &stale).await.unwrap());
    assert_eq!(c.get(&k).await.unwrap(), None);
    assert!(c.put(&k, "fresh".into(), hour, &fresh).await.unwrap());
    assert_eq!(c.get(&k).await.unwrap().as_deref(), Some("fresh"));
    // A later eviction makes the fresh ticket stale in turn.
    c.evict(&k).await.unwrap();
    assert!(!c.put(&k, "again".into(), hour, &fresh).await.unwrap());
    assert_eq!(c.get(&k).await.unwrap(), None);
}
