//! Redis as production runs it: a three-master Redis Cluster (each master with a replica) and a
//! Sentinel-managed primary with one replica, both started by the test on free ports in a
//! temporary directory (never the shared 6379), torn down by a guard that kills the processes.
//! Run when `TALOS_TEST_REDIS_URL` is set (the Redis leg: `redis-server` is installed).
//!
//! Each deployment: the cache contract through two handles, an eviction on one handle seen by the
//! other's in-process layer, the limiter exact across two handles; then a primary is killed and a
//! replica promoted, with evictions running all along: once an eviction has returned `Ok`, no
//! read on either handle ever answers the evicted value, before, during or after the failover.
//! After the failover the same checks hold again.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// Processes started by a test and their directory; dropping kills them all.
struct Procs {
    dir: PathBuf,
    children: Vec<(u16, Child)>,
}

impl Procs {
    fn new(name: &str) -> Procs {
        let dir = std::env::temp_dir().join(format!("talos-{name}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Procs {
            dir,
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, port: u16, args: &[String]) {
        let log = std::fs::File::create(self.dir.join(format!("{port}.log"))).unwrap();
        let child = Command::new("redis-server")
            .args(args)
            .current_dir(&self.dir)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.children.push((port, child));
        wait_until(Duration::from_secs(10), || {
            cli(port, &["PING"]).filter(|o| o == "PONG")
        })
        .unwrap_or_else(|| panic!("redis on port {port} answers"));
    }

    fn kill(&mut self, port: u16) {
        let i = self.children.iter().position(|(p, _)| *p == port).unwrap();
        let (_, mut child) = self.children.remove(i);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that is free, and whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// `redis-cli -p port args…`, trimmed stdout; None when it fails.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    // `CLUSTER INFO` has the cluster state; `INFO <section>` the rest.
    let info = if section == "cluster" {
        cli(port, &["CLUSTER", "INFO"])?
    } else {
        cli(port, &["INFO", section])?
    };
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn base_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn cluster_node_args(port: u16, dir: &Path) -> Vec<String> {
    let mut a = base_args(port);
    a.extend(
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &dir.join(format!("nodes-{port}.conf")).to_string_lossy(),
            "--cluster-node-timeout",
            "1000",
            "--dbfilename",
            &format!("dump-{port}.rdb"),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a
}

struct Cluster {
    procs: Procs,
    ports: Vec<u16>,
}

/// Three masters and three replicas (`--cluster-replicas 1`).
fn start_cluster() -> Cluster {
    let mut procs = Procs::new("cluster");
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    for &p in &ports {
        let args = cluster_node_args(p, &procs.dir);
        procs.spawn(p, &args);
    }
    let mut create = vec!["--cluster".to_string(), "create".to_string()];
    create.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
    create.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
    let out = Command::new("redis-cli")
        .args(&create)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli runs");
    assert!(out.success(), "redis-cli --cluster create");
    let cluster = Cluster { procs, ports };
    cluster.wait_healthy(&cluster.ports);
    cluster.wait_replicated(&cluster.ports);
    cluster
}

impl Cluster {
    fn wait_healthy(&self, alive: &[u16]) {
        wait_until(Duration::from_secs(30), || {
            alive
                .iter()
                .all(|&p| info_field(p, "cluster", "cluster_state").as_deref() == Some("ok"))
                .then_some(())
        })
        .expect("the cluster reports ok on every node");
    }

    /// Every master has a replica in sync (evictions wait for one: `wait_replicas: 1`).
    fn wait_replicated(&self, alive: &[u16]) {
        wait_until(Duration::from_secs(30), || {
            alive
                .iter()
                .all(|&p| match info_field(p, "replication", "role").as_deref() {
                    Some("master") => {
                        info_field(p, "replication", "connected_slaves").is_some_and(|n| n != "0")
                    }
                    Some("slave") => {
                        info_field(p, "replication", "master_link_status").as_deref() == Some("up")
                    }
                    _ => false,
                })
                .then_some(())
        })
        .expect("every master has a replica in sync");
    }

    fn masters(&self, alive: &[u16]) -> Vec<u16> {
        alive
            .iter()
            .copied()
            .filter(|&p| info_field(p, "replication", "role").as_deref() == Some("master"))
            .collect()
    }

    fn settings(&self, ns: &str) -> RedisSettings {
        let mut s = RedisSettings::from_url("redis://127.0.0.1", ns).unwrap();
        s.mode = RedisMode::Cluster;
        s.addrs = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        s.timeout = Duration::from_secs(2);
        s.wait_replicas = 1;
        s
    }
}

struct Sentinels {
    procs: Procs,
    master: u16,
    replica: u16,
    sentinels: Vec<u16>,
}

const MASTER_NAME: &str = "talos-test";

/// One primary, one replica, three sentinels (quorum 2).
fn start_sentinels() -> Sentinels {
    let mut procs = Procs::new("sentinel");
    let (master, replica) = (free_port(), free_port());
    procs.spawn(master, &base_args(master));
    let mut r = base_args(replica);
    r.extend(["--replicaof", "127.0.0.1", &master.to_string()].map(String::from));
    procs.spawn(replica, &r);
    let sentinels: Vec<u16> = (0..3).map(|_| free_port()).collect();
    for &s in &sentinels {
        let conf = procs.dir.join(format!("sentinel-{s}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {s}\nbind 127.0.0.1\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n"
            ),
        )
        .unwrap();
        procs.spawn(
            s,
            &[conf.to_string_lossy().to_string(), "--sentinel".into()],
        );
    }
    let set = Sentinels {
        procs,
        master,
        replica,
        sentinels,
    };
    set.wait_healthy(replica);
    set
}

impl Sentinels {
    /// Every sentinel sees the others and can fail over, and `replica` is in sync.
    fn wait_healthy(&self, replica: u16) {
        wait_until(Duration::from_secs(30), || {
            let ok = self.sentinels.iter().all(|&s| {
                cli(s, &["SENTINEL", "ckquorum", MASTER_NAME]).is_some_and(|o| o.starts_with("OK"))
                    && cli(s, &["SENTINEL", "replicas", MASTER_NAME])
                        .is_some_and(|o| o.contains(&replica.to_string()))
            }) && info_field(replica, "replication", "master_link_status").as_deref()
                == Some("up");
            ok.then_some(())
        })
        .expect("sentinels agree and the replica is in sync");
    }

    fn master_port(&self) -> Option<u16> {
        let out = cli(
            self.sentinels[0],
            &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
        )?;
        out.lines().nth(1)?.trim().parse().ok()
    }

    fn settings(&self, ns: &str) -> RedisSettings {
        let mut s = RedisSettings::from_url("redis://127.0.0.1", ns).unwrap();
        s.mode = RedisMode::Sentinel;
        s.addrs = self
            .sentinels
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        s.master_name = MASTER_NAME.into();
        s.timeout = Duration::from_secs(2);
        s.wait_replicas = 1;
        s
    }
}

fn redis_leg() -> bool {
    let on = std::env::var("TALOS_TEST_REDIS_URL").is_ok();
    if !on {
        eprintln!("TALOS_TEST_REDIS_URL unset: Redis leg not run");
    }
    on
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

/// The contract on both handles, an eviction on A reaching B's in-process layer, the limiter
/// exact across A and B on keys spread over slots.
async fn checks(n: &Nodes) {
    contract(n.a.as_ref()).await;
    contract(n.b.as_ref()).await;

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
        let started = Instant::now();
        n.a.evict(&k).await.unwrap();
        let mut seen = false;
        while started.elapsed() < Duration::from_secs(10) {
            if n.b.invalidations_received() > received {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(seen, "the invalidation reaches B");
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
    let n = Arc::new(nodes(&cluster.settings(&ns)).await);
    checks(&n).await;

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

    // The same checks hold on the new topology (clients follow the slot map themselves).
    checks(&n).await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_sentinel_contract_invalidation_limiter_and_failover() {
    if !redis_leg() {
        return;
    }
    let mut set = tokio::task::spawn_blocking(start_sentinels).await.unwrap();
    let ns = format!("talos-test-{}", Uuid::new_v4().simple());
    let n = Arc::new(nodes(&set.settings(&ns)).await);
    checks(&n).await;

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
    let set = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), || {
            (set.master_port() == Some(new)).then_some(())
        })
        .expect("the sentinels promote the replica");
        // The old primary comes back; the sentinels make it a replica of the new one.
        set.procs.spawn(old, &base_args(old));
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

    checks(&n).await;
    drop(set);
}
