//! Contract suite for every cache backend: the same cases run against each.

use std::time::Duration;

use talos_cache::{CacheKey, KeyCache, MemoryCache, NoopCache};
use uuid::Uuid;

fn memory() -> MemoryCache<String> {
    MemoryCache::new(1 << 20, |v: &String| v.len() as u32)
}

async fn contract(cache: &dyn KeyCache<String>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let k = CacheKey::new(a, "key-1");
    cache
        .put(&k, "v1".into(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some("v1"));
    // Scoped by network: the same key in another network is a different entry.
    assert_eq!(cache.get(&CacheKey::new(b, "key-1")).await.unwrap(), None);
    cache
        .put(&k, "v2".into(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some("v2"));
    cache.evict(&k).await.unwrap();
    assert_eq!(cache.get(&k).await.unwrap(), None);
    // Zero TTL stores nothing; short TTLs expire.
    cache.put(&k, "zero".into(), Duration::ZERO).await.unwrap();
    assert_eq!(cache.get(&k).await.unwrap(), None);
    cache
        .put(&k, "short".into(), Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(cache.get(&k).await.unwrap(), None);
}

#[tokio::test]
async fn memory_cache_contract() {
    contract(&memory()).await;
}

#[tokio::test]
async fn noop_cache_never_hits() {
    let c = NoopCache;
    let k = CacheKey::new(Uuid::nil(), "k");
    KeyCache::<String>::put(&c, &k, "v".into(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(KeyCache::<String>::get(&c, &k).await.unwrap(), None);
}

#[tokio::test]
async fn memory_cache_is_bounded() {
    let c = MemoryCache::<String>::new(10_000, |v: &String| v.len() as u32);
    for i in 0..1000 {
        c.put(
            &CacheKey::new(Uuid::nil(), format!("k{i}")),
            "x".repeat(100),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    }
    assert!(
        c.entry_count() < 100,
        "{} entries exceed the byte bound",
        c.entry_count()
    );
}
