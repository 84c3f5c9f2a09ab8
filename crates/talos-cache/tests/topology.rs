//! Redis as production runs it: a three-master Redis Cluster (each master with a replica) and a
//! Sentinel-managed primary with one replica, both started by the test on free ports in a
//! temporary directory (never the shared 6379), torn down by a guard that kills the processes.
//! Run when `TALOS_TEST_REDIS_URL` is set (the Redis leg: `redis-server` is installed).
//!
//! Each deployment: the cache contract through two handles, an eviction on one handle seen by the
//! other's in-process layer, the limiter exact across two handles; then a primary is killed and a
//! replica promoted, with evictions running all along: once an eviction has returned `Ok`, no
//! read on either handle ever answers the evicted value, before, during or after the failover.
//! After the failover the same checks hold again. Sentinel also goes through a planned
//! failover (`SENTINEL FAILOVER`), where the old primary stays up as a replica.
//! The processes: `talos_test_support::redis_topology`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use talos_cache::{
    CacheKey, KeyCache, MemoryCache, Rate, RateLimiter, Redis, RedisCache, RedisLimiter, RedisMode,
    RedisSettings,
};
use uuid::Uuid;

mod common;
use common::contract;
use talos_test_support::redis_topology::{
    Cluster, MASTER_NAME, Sentinels, base_args, cli, cluster_node_args, info_field, start_cluster,
    start_sentinels, wait_until,
};

fn cluster_settings(cluster: &Cluster, ns: &str) -> RedisSettings {
    let mut s = RedisSettings::from_url("redis://127.0.0.1", ns).unwrap();
    s.mode = RedisMode::Cluster;
    s.addrs = cluster.addrs();
    s.timeout = Duration::from_secs(2);
    s.wait_replicas = 1;
    s
}

fn sentinel_settings(set: &Sentinels, ns: &str) -> RedisSettings {
    let mut s = RedisSettings::from_url("redis://127.0.0.1", ns).unwrap();
    s.mode = RedisMode::Sentinel;
    s.addrs = set.addrs();
    s.master_name = MASTER_NAME.into();
    s.timeout = Duration::from_secs(2);
    s.wait_replicas = 1;
    s
}

fn redis_leg() -> bool {
    talos_test_support::redis_url().is_some()
}

/// Two nodes' view of one deployment: caches with an in-process layer (`a`, `b`), caches
/// without one (`ra`, `rb`, the default configuration), and limiters.
struct Nodes {
    a: Arc<RedisCache<String>>,
    b: Arc<RedisCache<String>>,
    ra: Arc<RedisCache<String>>,
    rb: Arc<RedisCache<String>>,
    la: RedisLimiter,
    lb: RedisLimiter,
}

async fn nodes(s: &RedisSettings) -> Nodes {
    let cache = || {
        Arc::new(RedisCache::new(
            Redis::connect(s).unwrap(),
            Some((
                MemoryCache::new(1 << 20, |v: &String| v.len() as u32),
                Duration::from_secs(60),
            )),
        ))
    };
    let plain = || Arc::new(RedisCache::new(Redis::connect(s).unwrap(), None));
    let (a, b, ra, rb) = (cache(), cache(), plain(), plain());
    for c in [&a, &b, &ra, &rb] {
        assert!(c.wait_connected(Duration::from_secs(10)).await);
    }
    Nodes {
        a,
        b,
        ra,
        rb,
        la: RedisLimiter::new(Redis::connect(s).unwrap()),
        lb: RedisLimiter::new(Redis::connect(s).unwrap()),
    }
}

/// Retries while the deployment recovers (the caller's durable retry does this in the service).
async fn retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, talos_cache::CacheError>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("still failing after 60 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits (up to 20 s, past a fast-path role recheck) until both in-process handles have one
/// fast-path subscription per primary.
async fn wait_fast_paths(n: &Nodes, primaries: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while [&n.a, &n.b]
        .iter()
        .any(|c| c.fast_path_connections() != primaries)
    {
        assert!(
            Instant::now() < deadline,
            "fast paths: A {}, B {}, want {primaries}",
            n.a.fast_path_connections(),
            n.b.fast_path_connections()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The contract on both handles, an eviction on A reaching B's in-process layer, the limiter
/// exact across A and B on keys spread over slots. `cluster`: B's in-process layer also hears
/// every eviction on its fast path, straight from the primary that ran it (one subscription per
/// primary, none to the replicas).
async fn checks(n: &Nodes, cluster: bool) {
    contract(n.a.as_ref()).await;
    contract(n.b.as_ref()).await;
    if cluster {
        wait_fast_paths(n, 3).await;
    } else {
        assert_eq!(n.b.fast_path_connections(), 0);
    }

    // An eviction on A reaches B's in-process layer.
    let hour = Duration::from_secs(3600);
    for i in 0..5 {
        let k = CacheKey::new(Uuid::new_v4(), format!("cross-{i}"));
        let t = n.a.ticket(&k).await.unwrap();
        assert!(n.a.put(&k, "v".into(), hour, &t).await.unwrap());
        assert_eq!(
            n.b.get(&k).await.unwrap().as_deref(),
            Some("v"),
            "B caches it"
        );
        let received = n.b.invalidations_received();
        let fast = n.b.fast_path_received();
        let started = Instant::now();
        n.a.evict(&k).await.unwrap();
        let mut seen = false;
        while started.elapsed() < Duration::from_secs(10) {
            if n.b.invalidations_received() > received
                && (!cluster || n.b.fast_path_received() > fast)
            {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(
            seen,
            "the invalidation reaches B (and its fast path in a cluster)"
        );
        eprintln!("invalidation seen on B after {:?}", started.elapsed());
        assert_eq!(n.b.get(&k).await.unwrap(), None);
    }

    // Limiter: 10 per hour, 40 concurrent checks split over A and B, on several keys (slots).
    let rate = Rate::new(10, Duration::from_secs(3600)).unwrap();
    for i in 0..4 {
        let k = CacheKey::new(Uuid::new_v4(), format!("rl-{i}"));
        let mut tasks = Vec::new();
        for j in 0..40 {
            let l: &RedisLimiter = if j % 2 == 0 { &n.la } else { &n.lb };
            tasks.push(l.check(&k, rate));
        }
        let allowed = futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .filter(|d| d.as_ref().unwrap().allowed)
            .count();
        assert_eq!(allowed, 10, "exactly the quota across two nodes");
    }
}

/// Evicts fresh keys in a loop (retrying each until it returns Ok, as the outbox does) while
/// `stop` is unset, and reads every evicted key on both handles after each round: an evicted
/// value must never come back. Returns how many evictions completed.
///
/// On the handles without an in-process layer (the default): an in-process layer is evicted when
/// the message reaches its node, which is after `evict` returns (in a cluster the message first
/// crosses the cluster bus); its bound is the heartbeat lease, checked by `checks`.
async fn revocations_hold(
    n: Arc<Nodes>,
    stop: Arc<AtomicBool>,
    ns: String,
    ports: Vec<u16>,
) -> usize {
    let hour = Duration::from_secs(3600);
    let mut evicted: Vec<CacheKey> = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Acquire) {
        let k = CacheKey::new(Uuid::new_v4(), format!("revoke-{i}"));
        i += 1;
        // Cached while live (best effort: the deployment may be failing over).
        if let Ok(t) = n.ra.ticket(&k).await {
            let _ = n.ra.put(&k, "live".into(), hour, &t).await;
            let _ = n.rb.get(&k).await;
        }
        retry(|| n.ra.evict(&k)).await;
        evicted.push(k);
        for k in &evicted {
            for (name, c) in [("A", &n.ra), ("B", &n.rb)] {
                if let Ok(Some(v)) = c.get(k).await {
                    // Where is it? Each node's own answer for the value key (MOVED from the
                    // nodes that do not serve its slot).
                    let key = format!("{ns}:v1:k:{{{}:{}}}", k.nid, k.key);
                    let nodes: Vec<_> = ports
                        .iter()
                        .map(|&p| {
                            (
                                p,
                                cli(p, &["GET", &key]),
                                info_field(p, "replication", "role"),
                            )
                        })
                        .collect();
                    panic!(
                        "an evicted value ({v:?}) was answered again by {name} for {k:?}; \
                         nodes: {nodes:?}"
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    evicted.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_cluster_contract_invalidation_limiter_and_failover() {
    if !redis_leg() {
        return;
    }
    let mut cluster = tokio::task::spawn_blocking(start_cluster).await.unwrap();
    let ns = format!("talos-test-{}", Uuid::new_v4().simple());
    let n = Arc::new(nodes(&cluster_settings(&cluster, &ns)).await);
    checks(&n, true).await;

    let stop = Arc::new(AtomicBool::new(false));
    let revoker = tokio::spawn(revocations_hold(
        n.clone(),
        stop.clone(),
        ns.clone(),
        cluster.ports.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Kill one master; its replica takes over.
    let victim = cluster.masters(&cluster.ports)[0];
    cluster.procs.kill(victim);
    let alive: Vec<u16> = cluster
        .ports
        .iter()
        .copied()
        .filter(|&p| p != victim)
        .collect();
    let c = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(30), || {
            (cluster.masters(&alive).len() == 3).then_some(())
        })
        .expect("a replica is promoted");
        cluster.wait_healthy(&alive);
        // The old master comes back as a replica of the new one, so evictions are acknowledged
        // by a replica again (`wait_replicas: 1`).
        let args = cluster_node_args(victim, &cluster.procs.dir);
        cluster.procs.spawn(victim, &args);
        wait_until(Duration::from_secs(30), || {
            (info_field(victim, "replication", "master_link_status").as_deref() == Some("up"))
                .then_some(())
        })
        .expect("the old master rejoins as a replica");
        cluster.wait_replicated(&cluster.ports);
        cluster
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let evictions = revoker.await.unwrap();
    assert!(evictions > 0);
    eprintln!("{evictions} evictions across the failover");

    // The same checks hold on the new topology (clients follow the slot map themselves; the
    // promoted replica gets a fast path, the old master, now a replica, none).
    checks(&n, true).await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_sentinel_contract_invalidation_limiter_and_failover() {
    if !redis_leg() {
        return;
    }
    let mut set = tokio::task::spawn_blocking(start_sentinels).await.unwrap();
    let ns = format!("talos-test-{}", Uuid::new_v4().simple());
    let n = Arc::new(nodes(&sentinel_settings(&set, &ns)).await);
    checks(&n, false).await;

    let stop = Arc::new(AtomicBool::new(false));
    let revoker = tokio::spawn(revocations_hold(
        n.clone(),
        stop.clone(),
        ns.clone(),
        vec![set.master, set.replica],
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (old, new) = (set.master, set.replica);
    set.procs.kill(old);
    let mut set = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), || {
            (set.master_port() == Some(new)).then_some(())
        })
        .expect("the sentinels promote the replica");
        // The old primary comes back as a replica of the new one (as its sentinel-rewritten
        // config would say; a bare restart waits for the sentinels to convert it, which is slow
        // and varies).
        let mut args = base_args(old);
        args.extend(["--replicaof", "127.0.0.1", &new.to_string()].map(String::from));
        set.procs.spawn(old, &args);
        set.master = new;
        set.replica = old;
        set.wait_healthy(old);
        set
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let evictions = revoker.await.unwrap();
    assert!(evictions > 0);
    eprintln!("{evictions} evictions across the failover");
    checks(&n, false).await;

    // A planned failover (`SENTINEL FAILOVER`): the old primary stays up and is demoted in
    // place, so a connection kept to it would now reach a replica; the same must hold.
    let stop = Arc::new(AtomicBool::new(false));
    let revoker = tokio::spawn(revocations_hold(
        n.clone(),
        stop.clone(),
        ns.clone(),
        vec![set.master, set.replica],
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let set = tokio::task::spawn_blocking(move || {
        set.failover();
        set
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let evictions = revoker.await.unwrap();
    assert!(evictions > 0);
    eprintln!("{evictions} evictions across the planned failover");
    checks(&n, false).await;
    drop(set);
}
