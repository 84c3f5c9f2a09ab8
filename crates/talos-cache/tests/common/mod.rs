//! The cache contract shared by the backend suite (`cache.rs`) and the deployment suite
//! (`topology.rs`).

use std::time::Duration;

use talos_cache::{CacheKey, KeyCache};
use uuid::Uuid;

/// A read-through's put: ticket first (as before a database read), then put.
pub async fn put<C: KeyCache<String> + ?Sized>(
    c: &C,
    k: &CacheKey,
    v: &str,
    ttl: Duration,
) -> bool {
    let ticket = c.ticket(k).await.unwrap();
    c.put(k, v.into(), ttl, &ticket).await.unwrap()
}

pub async fn contract(cache: &dyn KeyCache<String>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let k = CacheKey::new(a, "key-1");
    let hour = Duration::from_secs(3600);
    assert_eq!(cache.get(&k).await.unwrap(), None);
    assert!(put(cache, &k, "v1", hour).await);
    assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some("v1"));
    // Scoped by network: the same key in another network is a different entry.
    assert_eq!(cache.get(&CacheKey::new(b, "key-1")).await.unwrap(), None);
    assert!(put(cache, &k, "v2", hour).await);
    assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some("v2"));
    cache.evict(&k).await.unwrap();
    assert_eq!(cache.get(&k).await.unwrap(), None);
    // evict. A reader that took its ticket before the eviction (it read the pre-mutation row)
    // cannot store what it read...
    let stale = cache.ticket(&k).await.unwrap();
    cache.evict(&k).await.unwrap();
    assert!(!cache.put(&k, "stale".into(), hour, &stale).await.unwrap());
    assert_eq!(
        cache.get(&k).await.unwrap(),
        None,
        "a put with a pre-eviction ticket is refused"
    );
    // (Whether a reader that started after the eviction may store at once differs: Redis
    // compares versions and lets it; an in-process cache refuses every put while the tombstone
    // lasts.)
    // Evicting a key that was never cached is fine.
    cache.evict(&CacheKey::new(a, "never")).await.unwrap();
    // Zero TTL stores nothing; short TTLs expire.
    let k2 = CacheKey::new(a, "h:00ff");
    assert!(!put(cache, &k2, "zero", Duration::ZERO).await);
    assert_eq!(cache.get(&k2).await.unwrap(), None);
    assert!(put(cache, &k2, "short", Duration::from_millis(50)).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(cache.get(&k2).await.unwrap(), None);
}
