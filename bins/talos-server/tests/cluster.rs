//! Two `talos-server` processes on one PostgreSQL and one Redis (`cache.type: redis`): a key
//! cached on node B and revoked on node A is reported revoked by B within 1 second, without any
//! cache-bypass header; the rate limiter is shared by both nodes.
//!
//! The same runs on a private Redis Cluster and a private Sentinel setup (`cache.redis.mode`),
//! the latter through a failover (processes: `talos_test_support::redis_topology`).
//!
//! Runs only when both `TALOS_TEST_DATABASE_URL` and `TALOS_TEST_REDIS_URL` are set. With
//! `TALOS_PROPAGATION_SAMPLES=N` it revokes N keys per figure (standalone, cluster, sentinel
//! before and after the failover) and prints the median, p99 and maximum propagation time (the
//! figures in docs/benchmarks.md):
//!
//! ```text
//! TALOS_PROPAGATION_SAMPLES=100 cargo test -p talos-server --test cluster -- --nocapture
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use talos_test_support::redis_topology;
use talos_test_support::{TestApp, database_url, redis_url};

#[path = "cluster/metering.rs"]
mod metering;

const BIN: &str = env!("CARGO_BIN_EXE_talos-server");
const SECRET: &str = "cluster-test-secret-aaaaaaaaaaaaaaaaaaaaaaaaaa";
const VERIFY: &str = "/v2alpha1/admin/apiKeys:verify";

async fn post(node: &TestApp, path: &str, body: Value) -> (u16, HeaderMap, Value) {
    node.send(Method::POST, path, Some(body)).await
}

/// Verifies (no cache-bypass header); returns the body and the `Ory-Talos-Cache` header.
async fn verify(node: &TestApp, credential: &str) -> (Value, String) {
    let (s, h, j) = post(node, VERIFY, json!({"credential": credential})).await;
    assert_eq!(s, 200, "{j}");
    let cache = h
        .get("ory-talos-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (j, cache)
}

async fn revoke(node: &TestApp, key_id: &str) {
    let (s, _, j) = post(
        node,
        &format!("/v2alpha1/admin/apiKeys/{key_id}:revoke"),
        json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
    )
    .await;
    assert!(s == 200 || s == 204, "{s} {j}");
}

/// How many revocations a propagation figure takes: `TALOS_PROPAGATION_SAMPLES`, else `default`.
fn samples(default: usize) -> usize {
    std::env::var("TALOS_PROPAGATION_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints the median, p99 (nearest rank) and maximum of `seen` under `label`.
fn report(label: &str, seen: &mut [Duration]) {
    seen.sort();
    let rank = |p: f64| seen[((p * seen.len() as f64).ceil() as usize).clamp(1, seen.len()) - 1];
    eprintln!(
        "{label}: revocation propagation A -> B over {} revocations: median {:?}, p99 {:?}, max {:?}",
        seen.len(),
        rank(0.5),
        rank(0.99),
        seen[seen.len() - 1]
    );
}

/// `samples` times: a key cached on B (HIT) and revoked on A is reported revoked by B within
/// 1 second, without any cache-bypass header. Returns the propagation times.
async fn revocations_propagate(a: &TestApp, b: &TestApp, samples: usize) -> Vec<Duration> {
    let mut seen = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (key_id, secret) = a.issue_with(json!({})).await;
        // Cache it on B: the first verify misses and fills the cache, a later one hits. (B may
        // need a moment after start to subscribe to the invalidation channel; until then it
        // reads the database.)
        let (j, cache) = verify(b, &secret).await;
        assert_eq!(j["is_valid"], true, "{j}");
        assert_eq!(cache, "MISS");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (j, cache) = verify(b, &secret).await;
            assert_eq!(j["is_valid"], true, "{j}");
            if cache == "HIT" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "B never served the key from its cache"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        revoke(a, &key_id).await;
        let revoked = Instant::now();
        loop {
            let (j, _) = verify(b, &secret).await;
            if j["error_code"] == "VERIFICATION_ERROR_REVOKED" {
                let took = revoked.elapsed();
                // The answer itself may have come late: the bound holds for it too.
                assert!(took < Duration::from_secs(1), "revoked only after {took:?}");
                seen.push(took);
                break;
            }
            assert_eq!(j["is_valid"], true, "{j}");
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "B still accepts the key 1 s after its revocation on A"
            );
        }
    }
    seen
}

/// One bucket for both nodes: quota 3 is spent across A and B.
async fn limiter_is_shared(a: &TestApp, b: &TestApp) {
    let (_, secret) = a
        .issue_with(json!({"rate_limit_policy": {"quota": "3", "window": "1h"}}))
        .await;
    for (node, want) in [(a, "2"), (b, "1"), (a, "0")] {
        let (j, _) = verify(node, &secret).await;
        assert_eq!(j["is_valid"], true, "{j}");
        assert_eq!(j["rate_limit_remaining"], want, "{j}");
    }
    let (s, h, j) = post(b, VERIFY, json!({"credential": secret})).await;
    assert_eq!(s, 200);
    assert_eq!(j["error_code"], "VERIFICATION_ERROR_RATE_LIMITED", "{j}");
    assert!(h.get("retry-after").is_some());
}

/// Node A of a two-node deployment on a fresh PostgreSQL database, Redis at `redis` (a key
/// prefix of its own) with the `cache.redis` settings merged over it, the Redis limiter.
fn node_a(admin: &str, redis: &str, cache_redis: &str) -> TestApp {
    TestApp::builder()
        .binary(BIN)
        .issuer("http://cluster.test")
        .without_default_ttl()
        .secret(SECRET)
        .postgres(admin)
        .redis(redis)
        .config("rate_limit:\n  enabled: true\n  backend: redis\n")
        .config(&format!("cache:\n  redis:\n{cache_redis}"))
        .env("TALOS_LOG_LEVEL", "warn")
        .spawn()
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_on_one_node_is_seen_by_the_other_within_a_second() {
    let (Some(admin), Some(redis)) = (database_url(), redis_url()) else {
        return;
    };
    // A fresh, migrated PostgreSQL database and a key prefix of its own on the shared Redis.
    let a = node_a(&admin, &redis, "    mode: standalone\n");
    let b = a.spawn_another(None);

    let mut seen = revocations_propagate(&a, &b, samples(3)).await;
    report("standalone", &mut seen);
    limiter_is_shared(&a, &b).await;
}

/// `cache.redis` settings for a private topology: the mode, its addresses, evictions
/// acknowledged by a replica, and the in-process layer on, so a hit on B is answered from B's
/// memory and only the pub/sub invalidation can end it.
fn topology_yaml(mode: &str, addrs: &[String], extra: &str) -> String {
    let addrs = addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "    mode: {mode}\n    addrs: [{addrs}]\n    wait_replicas: 1\n    local:\n      enabled: true\n{extra}"
    )
}

/// Two nodes on a three-master Redis Cluster (`cache.redis.mode: cluster`): revocations reach
/// the other node's in-process layer through cluster-wide pub/sub, the limiter is shared. (The
/// cluster is private; `TALOS_TEST_REDIS_URL` only says Redis is installed.)
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_on_a_redis_cluster() {
    let (Some(admin), Some(redis)) = (database_url(), redis_url()) else {
        return;
    };
    let cluster = tokio::task::spawn_blocking(redis_topology::start_cluster)
        .await
        .unwrap();
    let a = node_a(
        &admin,
        &redis,
        &topology_yaml("cluster", &cluster.addrs(), ""),
    );
    let b = a.spawn_another(None);
    let mut seen = revocations_propagate(&a, &b, samples(5)).await;
    report("cluster", &mut seen);
    limiter_is_shared(&a, &b).await;
    drop((a, b));
    drop(cluster);
}

/// Two nodes on a Sentinel-managed primary (`cache.redis.mode: sentinel`): revocations and the
/// shared limiter, then a planned failover (`SENTINEL FAILOVER`) while A keeps revoking keys B
/// had cached: no revoked key ever verifies on either node, before, during or after it; then
/// the same checks hold on the new primary.
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_on_sentinel_through_a_failover() {
    let (Some(admin), Some(redis)) = (database_url(), redis_url()) else {
        return;
    };
    let mut set = tokio::task::spawn_blocking(redis_topology::start_sentinels)
        .await
        .unwrap();
    let extra = format!("    master_name: \"{}\"\n", redis_topology::MASTER_NAME);
    let a = node_a(
        &admin,
        &redis,
        &topology_yaml("sentinel", &set.addrs(), &extra),
    );
    let b = a.spawn_another(None);
    let mut seen = revocations_propagate(&a, &b, samples(5)).await;
    report("sentinel", &mut seen);
    limiter_is_shared(&a, &b).await;

    let (a, b) = (Arc::new(a), Arc::new(b));
    let stop = Arc::new(AtomicBool::new(false));
    let revoker = tokio::spawn({
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        async move {
            let mut revoked = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let (key_id, secret) = a.issue_with(json!({})).await;
                let (j, _) = verify(&b, &secret).await;
                assert_eq!(j["is_valid"], true, "{j}");
                let _ = verify(&b, &secret).await;
                revoke(&a, &key_id).await;
                revoked.push(secret);
                for secret in &revoked {
                    for (name, node) in [("A", &a), ("B", &b)] {
                        let (j, _) = verify(node, secret).await;
                        assert_eq!(
                            j["error_code"], "VERIFICATION_ERROR_REVOKED",
                            "a revoked key verified on {name} around the failover: {j}"
                        );
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            revoked.len()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let set = tokio::task::spawn_blocking(move || {
        set.failover();
        set
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let revocations = revoker.await.unwrap();
    assert!(revocations > 0);
    eprintln!("sentinel: {revocations} revocations across the failover");

    let mut seen = revocations_propagate(&a, &b, samples(5)).await;
    report("sentinel, after the failover", &mut seen);
    limiter_is_shared(&a, &b).await;
    drop((a, b));
    drop(set);
}
