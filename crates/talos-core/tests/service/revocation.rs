//! Revocation integrity: whatever the order of a mutation and a concurrent read-through, and
//! however long the shared cache is away, no verification after the mutation returned answers from
//! an entry older than it. Each test parks a verification between its database read and what it
//! does next (the store's gate), commits a mutation there, and checks what is cached afterwards.

use std::sync::Arc;
use std::time::Duration;

use talos_cache::{MemoryCache, Redis, RedisCache, RedisSettings};
use talos_core::*;
use talos_test_support::{StallProxy, redis_url};
use tokio::sync::oneshot;

use super::{
    Gate, NIL, SECRET_A, SECRET_B, config, harness, harness_with, spec, vreq, with_secret,
};

fn revoke_req() -> RevokeRequest {
    RevokeRequest {
        reason: RevocationReason::KeyCompromise,
        reason_text: None,
    }
}

/// Arms the store's gate: returns (fires when the next read is done, releases it).
fn arm(store: &super::CountingStore) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
    let (reached, reached_rx) = oneshot::channel();
    let (release_tx, release) = oneshot::channel();
    *store.gate.lock().unwrap() = Some(Gate { reached, release });
    (reached_rx, release_tx)
}

fn rotated() -> talos_core::config::Config {
    config(
        "",
        &[
            ("TALOS_SECRETS_HMAC_CURRENT", SECRET_B),
            ("TALOS_SECRETS_HMAC_RETIRED", SECRET_A),
        ],
    )
}

async fn import_under_a(h: &super::Harness, raw: &str) -> String {
    h.service
        .import(
            NIL,
            ImportRequest {
                raw_key: raw.into(),
                spec: spec("legacy"),
            },
        )
        .await
        .unwrap()
        .key_id
}

/// Defect 1: the first verification after a secret rotation re-hashes an imported key. A revoke
/// committing between its read and the re-hash evicted the old hash; the verification then cached
/// the active row it had read under the new hash, and the revoked key kept verifying (HIT).
#[tokio::test(flavor = "multi_thread")]
async fn revoke_during_rehash_is_never_cached_as_active() {
    let h = harness(&with_secret(SECRET_A)).await;
    let raw = "sk_live_rehash_race_0001";
    let key_id = import_under_a(&h, raw).await;
    h.service.reload(&rotated()).unwrap();

    let (reached, release) = arm(&h.store);
    let mutate = async {
        reached.await.unwrap();
        h.service
            .revoke(NIL, None, &key_id, revoke_req())
            .await
            .unwrap();
        release.send(()).unwrap();
    };
    let req = vreq(raw);
    let (during, ()) = tokio::join!(h.service.verify(NIL, &req), mutate);
    assert_eq!(
        during.result.unwrap_err().code,
        VerifyErrorCode::Revoked,
        "the re-hash returns the row as committed"
    );
    let after = h.service.verify(NIL, &vreq(raw)).await;
    assert_eq!(after.result.unwrap_err().code, VerifyErrorCode::Revoked);
}

/// The same race with a delete: the delete evicts the hash the row has at the delete.
#[tokio::test(flavor = "multi_thread")]
async fn delete_during_rehash_is_never_cached() {
    let h = harness(&with_secret(SECRET_A)).await;
    let raw = "sk_live_rehash_race_0002";
    let key_id = import_under_a(&h, raw).await;
    h.service.reload(&rotated()).unwrap();

    let (reached, release) = arm(&h.store);
    let mutate = async {
        reached.await.unwrap();
        h.service.delete_imported(NIL, &key_id).await.unwrap();
        release.send(()).unwrap();
    };
    let req = vreq(raw);
    let (during, ()) = tokio::join!(h.service.verify(NIL, &req), mutate);
    assert!(during.result.is_err(), "{:?}", during.result);
    let after = h.service.verify(NIL, &vreq(raw)).await;
    assert_eq!(after.result.unwrap_err().code, VerifyErrorCode::NotFound);
}

/// A verification that read the row before a revoke and stalls past the eviction's tombstone
/// must not store the pre-revocation row when it resumes (regression: the tombstone had expired
/// and the stale row was cached for a whole TTL).
#[tokio::test(flavor = "multi_thread")]
async fn stalled_reader_cannot_cache_after_a_revoke() {
    let memory = MemoryCache::with_tombstone_ttl(1 << 20, |_| 100, Duration::from_millis(200));
    let h = harness_with(&with_secret(SECRET_A), memory).await;
    let key = h.service.issue(NIL, spec("u")).await.unwrap();

    let (reached, release) = arm(&h.store);
    let mutate = async {
        reached.await.unwrap();
        h.service
            .revoke(NIL, None, &key.key.key_id, revoke_req())
            .await
            .unwrap();
        // Stall the reader well past the tombstone's life.
        tokio::time::sleep(Duration::from_millis(500)).await;
        release.send(()).unwrap();
    };
    let req = vreq(&key.secret);
    let (during, ()) = tokio::join!(h.service.verify(NIL, &req), mutate);
    assert!(during.result.is_ok(), "it read the row before the revoke");
    let after = h.service.verify(NIL, &vreq(&key.secret)).await;
    assert_eq!(after.result.unwrap_err().code, VerifyErrorCode::Revoked);
}

/// Defect 3: a revoke during a Redis outage answered 204, its eviction was given up, and once
/// Redis came back with its data every node answered `is_valid: true` (HIT) for the revoked key.
/// Two nodes share the database and reach Redis through one proxy; the outage is total.
#[tokio::test(flavor = "multi_thread")]
async fn revoke_during_a_redis_outage_never_verifies_after_redis_returns() {
    let Some(url) = redis_url() else { return };
    let ns = format!("talos-test-{}", uuid::Uuid::new_v4().simple());
    let mut settings = RedisSettings::from_url(&url, &ns).unwrap();
    settings.timeout = Duration::from_millis(500);
    // In front of Redis: cut drops every connection and refuses new ones; Redis keeps its data.
    let proxy = StallProxy::start(&settings.addrs[0]).await.unwrap();
    settings.addrs = vec![proxy.addr.to_string()];
    let store = talos_storage::connect("sqlite::memory:", &Default::default())
        .await
        .unwrap();
    let cfg = with_secret(SECRET_A);
    let node = |settings: &RedisSettings| {
        let cache: Arc<RedisCache<CachedKey>> = Arc::new(RedisCache::new(
            Redis::connect(settings).unwrap(),
            Some((MemoryCache::new(1 << 20, |_| 100), Duration::from_secs(60))),
        ));
        (
            Service::new(&cfg, store.clone(), cache.clone()).unwrap(),
            cache,
        )
    };
    let (a, cache_a) = node(&settings);
    let (b, cache_b) = node(&settings);
    assert!(cache_a.wait_connected(Duration::from_secs(10)).await);
    assert!(cache_b.wait_connected(Duration::from_secs(10)).await);

    let key = a.issue(NIL, spec("u")).await.unwrap();
    // Both nodes read through until the entry is in Redis and B answers from it.
    let mut hit = false;
    for _ in 0..100 {
        assert!(a.verify(NIL, &vreq(&key.secret)).await.result.is_ok());
        if b.verify(NIL, &vreq(&key.secret)).await.cache == CacheStatus::Hit {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hit, "the key is cached in Redis");

    proxy.cut();
    a.revoke(NIL, None, &key.key.key_id, revoke_req())
        .await
        .unwrap();
    // During the outage: answered from the database.
    for node in [&a, &b] {
        let out = node.verify(NIL, &vreq(&key.secret)).await;
        assert_eq!(out.result.unwrap_err().code, VerifyErrorCode::Revoked);
    }
    proxy.restore();
    // Redis is back with the pre-revocation entry; the nodes re-subscribe. No answer may be
    // valid, on either node, at any point.
    let mut hits_after = 0;
    for _ in 0..60 {
        for node in [&a, &b] {
            let out = node.verify(NIL, &vreq(&key.secret)).await;
            assert_eq!(
                out.result.as_ref().map(|_| ()).unwrap_err().code,
                VerifyErrorCode::Revoked,
                "a revoked key verified after Redis returned ({:?})",
                out.cache
            );
            hits_after += usize::from(out.cache == CacheStatus::Hit);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cache_a.is_connected() && cache_b.is_connected(),
        "both nodes are back on Redis"
    );
    let _ = hits_after; // HITs of the revoked row are fine; a valid answer is not.
}
