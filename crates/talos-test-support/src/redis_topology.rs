//! Private Redis deployments (feature `redis`, std only): a three-master Redis Cluster (each
//! master with a replica) and a Sentinel-managed primary with one replica and three sentinels,
//! started on free ports in a temporary directory (never the shared 6379) and killed when
//! dropped. Needs `redis-server` and `redis-cli` on `PATH`; the tests that use it run where
//! `TALOS_TEST_REDIS_URL` is set (Redis installed). Used by talos-cache's `topology.rs` and
//! talos-server's `cluster.rs`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Processes started by a test and their directory; dropping kills them all.
pub struct Procs {
    pub dir: PathBuf,
    pub children: Vec<(u16, Child)>,
}

impl Procs {
    pub fn new(name: &str) -> Procs {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("talos-{name}-{}-{unique}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Procs {
            dir,
            children: Vec::new(),
        }
    }

    pub fn spawn(&mut self, port: u16, args: &[String]) {
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
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(self.dir.join(format!("{port}.log")));
            panic!("redis on port {port} does not answer; its log: {log:?}")
        });
    }

    pub fn kill(&mut self, port: u16) {
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
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// `redis-cli -p port args…`, trimmed stdout; None when it fails.
pub fn cli(port: u16, args: &[&str]) -> Option<String> {
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

pub fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
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

pub fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
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

pub fn base_args(port: u16) -> Vec<String> {
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

pub fn cluster_node_args(port: u16, dir: &Path) -> Vec<String> {
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

pub struct Cluster {
    pub procs: Procs,
    pub ports: Vec<u16>,
}

/// Three masters and three replicas (`--cluster-replicas 1`).
pub fn start_cluster() -> Cluster {
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
        .output()
        .expect("redis-cli runs");
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster = Cluster { procs, ports };
    cluster.wait_healthy(&cluster.ports);
    cluster.wait_replicated(&cluster.ports);
    cluster
}

impl Cluster {
    pub fn wait_healthy(&self, alive: &[u16]) {
        wait_until(Duration::from_secs(60), || {
            alive
                .iter()
                .all(|&p| info_field(p, "cluster", "cluster_state").as_deref() == Some("ok"))
                .then_some(())
        })
        .unwrap_or_else(|| panic!("the cluster is not ok on every node: {}", self.state(alive)));
    }

    /// Every master has a replica in sync (evictions wait for one: `wait_replicas: 1`).
    pub fn wait_replicated(&self, alive: &[u16]) {
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
        .unwrap_or_else(|| panic!("a master has no replica in sync: {}", self.state(alive)));
    }

    pub fn masters(&self, alive: &[u16]) -> Vec<u16> {
        alive
            .iter()
            .copied()
            .filter(|&p| info_field(p, "replication", "role").as_deref() == Some("master"))
            .collect()
    }

    /// Each node's port, role and cluster state, for failure messages.
    fn state(&self, alive: &[u16]) -> String {
        let nodes: Vec<_> = alive
            .iter()
            .map(|&p| {
                (
                    p,
                    info_field(p, "replication", "role"),
                    info_field(p, "cluster", "cluster_state"),
                )
            })
            .collect();
        format!("{nodes:?}")
    }

    /// The seed nodes for `cache.redis.addrs`: every node.
    pub fn addrs(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }
}

pub struct Sentinels {
    pub procs: Procs,
    pub master: u16,
    pub replica: u16,
    pub sentinels: Vec<u16>,
}

pub const MASTER_NAME: &str = "talos-test";

/// One primary, one replica, three sentinels (quorum 2).
pub fn start_sentinels() -> Sentinels {
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
    pub fn wait_healthy(&self, replica: u16) {
        wait_until(Duration::from_secs(60), || {
            let ok = self.sentinels.iter().all(|&s| {
                cli(s, &["SENTINEL", "ckquorum", MASTER_NAME]).is_some_and(|o| o.starts_with("OK"))
                    && cli(s, &["SENTINEL", "replicas", MASTER_NAME])
                        .is_some_and(|o| o.contains(&replica.to_string()))
            }) && info_field(replica, "replication", "master_link_status").as_deref()
                == Some("up");
            ok.then_some(())
        })
        .unwrap_or_else(|| {
            let link = info_field(replica, "replication", "master_link_status");
            let role = info_field(replica, "replication", "role");
            let master = self.master_port();
            panic!(
                "sentinels disagree or {replica} is not in sync (role {role:?}, link {link:?}, \
                 sentinels' primary {master:?})"
            )
        });
    }

    pub fn master_port(&self) -> Option<u16> {
        let out = cli(
            self.sentinels[0],
            &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
        )?;
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// The sentinels, for `cache.redis.addrs`.
    pub fn addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// A planned failover (`SENTINEL FAILOVER`): the sentinels promote the replica and make the
    /// old primary its replica, with no wait for `down-after-milliseconds` (unlike a kill).
    /// Returns once the old primary is an in-sync replica of the new one.
    pub fn failover(&mut self) {
        let (old, new) = (self.master, self.replica);
        // Refused (NOGOODSLAVE, INPROG) until the sentinels have a fresh view of the replica.
        wait_until(Duration::from_secs(30), || {
            cli(self.sentinels[0], &["SENTINEL", "FAILOVER", MASTER_NAME]).filter(|o| o == "OK")
        })
        .expect("a sentinel starts the failover");
        wait_until(Duration::from_secs(60), || {
            (self.master_port() == Some(new)).then_some(())
        })
        .expect("the sentinels promote the replica");
        self.master = new;
        self.replica = old;
        self.wait_healthy(old);
    }
}
