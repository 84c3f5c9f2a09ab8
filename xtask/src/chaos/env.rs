//! The harness's own services: a PostgreSQL cluster (`initdb` as the `postgres` user, on a free
//! port, socket in its own directory), a Redis server on a free port, and `talos-server` nodes.
//! Every one is torn down when its guard drops, including on an error or Ctrl-C, so the
//! machine's shared PostgreSQL (5432) and Redis (6379) are never touched.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A directory under /tmp removed on drop (after unmounting anything mounted below it).
pub struct TmpDir {
    pub path: PathBuf,
    mounts: Vec<PathBuf>,
}

impl TmpDir {
    pub fn new(tag: &str) -> Result<TmpDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "talos-chaos-{tag}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TmpDir {
            path,
            mounts: Vec::new(),
        })
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    /// Mounts a tmpfs of `size` (e.g. "4M") at `sub`; unmounted on drop.
    pub fn mount_tmpfs(&mut self, sub: &str, size: &str) -> Result<PathBuf> {
        let dir = self.join(sub);
        std::fs::create_dir_all(&dir)?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ensure!(ok, "mount -t tmpfs failed (needs root / CAP_SYS_ADMIN)");
        self.mounts.push(dir.clone());
        Ok(dir)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(m)
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn pg_bin(tool: &str) -> PathBuf {
    // The highest installed major version; else whatever is on PATH.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.iter()
        .rev()
        .map(|d| d.join("bin").join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(tool))
}

/// The harness's own PostgreSQL cluster.
pub struct PgCluster {
    pub port: u16,
    pub dir: TmpDir,
    running: bool,
}

impl PgCluster {
    pub async fn start() -> Result<PgCluster> {
        let dir = TmpDir::new("pg")?;
        let st = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir.path)
            .status()?;
        ensure!(st.success(), "chown postgres {}", dir.path.display());
        let out = as_postgres(&pg_bin("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .await
            .context("running initdb as postgres")?;
        ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = PgCluster {
            port: free_port()?,
            dir,
            running: false,
        };
        pg.start_again().await?;
        pg.psql("postgres", "CREATE DATABASE talos").await?;
        Ok(pg)
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    pub fn dsn_via(&self, addr: SocketAddr, db: &str) -> String {
        format!("postgres://postgres@{addr}/{db}?sslmode=disable")
    }

    pub async fn start_again(&mut self) -> Result<()> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path.display()
        );
        let out = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("pg.log"))
            .args(["-w", "-t", "30", "-o", &opts, "start"])
            .stdout(Stdio::null())
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = true;
        Ok(())
    }

    /// `pg_ctl stop -m fast` (or `immediate`).
    pub async fn stop(&mut self, mode: &str) -> Result<()> {
        let out = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "30", "-m", mode, "stop"])
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
        Ok(())
    }

    /// One SQL statement through psql (unaligned, tuples only); returns stdout.
    pub async fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-A", "-t"])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Ends the session of `hold_lock` (its backend would otherwise sleep on, holding the lock).
    pub async fn release_lock(&self, mut child: Child) -> Result<()> {
        self.psql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{LOCK_APP}'"
            ),
        )
        .await?;
        let _ = child.kill().await;
        Ok(())
    }

    /// A psql session that holds `LOCK TABLE … ACCESS EXCLUSIVE` until killed (or `hold` ends).
    pub async fn hold_lock(&self, db: &str, table: &str, hold: Duration) -> Result<Child> {
        let sql = format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked'; SELECT pg_sleep({}); COMMIT;",
            hold.as_secs()
        );
        let mut child = Command::new("psql")
            .env("PGAPPNAME", LOCK_APP)
            .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-A", "-t"])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", &sql])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        // Wait until the lock is taken (psql prints 'locked' once the LOCK returned).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = self
                .psql(
                    db,
                    &format!(
                        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                         WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted"
                    ),
                )
                .await?;
            if n != "0" {
                return Ok(child);
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                bail!("the psql session did not take the lock within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-w", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

const LOCK_APP: &str = "talos-chaos-lock";

fn as_postgres(bin: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin);
    c
}

/// The harness's own Redis (no persistence).
pub struct Redis {
    pub port: u16,
    dir: TmpDir,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> Result<Redis> {
        let mut r = Redis {
            port: free_port()?,
            dir: TmpDir::new("redis")?,
            child: None,
        };
        r.start_again().await?;
        Ok(r)
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    pub async fn start_again(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.path)
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["PING"]).await.is_ok_and(|o| o == "PONG") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("redis-server on {} did not answer PING", self.port)
    }

    /// `SHUTDOWN NOSAVE`, then reaps the process (killing it if it lingers).
    pub async fn stop(&mut self) -> Result<()> {
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]).await;
        if let Some(mut c) = self.child.take()
            && tokio::time::timeout(Duration::from_secs(5), c.wait())
                .await
                .is_err()
        {
            let _ = c.kill().await;
        }
        Ok(())
    }

    pub async fn cli(&self, args: &[&str]) -> Result<String> {
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(args)
                .output(),
        )
        .await
        .context("redis-cli timed out")??;
        ensure!(out.status.success(), "redis-cli {args:?} failed");
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// Settings a node is started with; the harness writes them as the node's YAML file.
#[derive(Clone)]
pub struct NodeSpec {
    pub name: String,
    pub dsn: String,
    /// `noop`, `memory` or `redis`.
    pub cache: &'static str,
    pub redis: Option<SocketAddr>,
    /// Resilience settings of issue 11 (`db.statement_timeout`, …) the server may not know yet:
    /// dotted key → value. Only those `Probe` found supported are written.
    pub extras: Vec<(&'static str, Value)>,
    pub workers: usize,
}

impl NodeSpec {
    pub fn new(name: &str, dsn: &str, cache: &'static str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            dsn: dsn.into(),
            cache,
            redis: None,
            extras: Vec::new(),
            workers: 2,
        }
    }

    pub fn config(&self, port: u16, metrics_port: u16) -> Value {
        let mut c = json!({
            "serve": {
                "http": { "host": "127.0.0.1", "port": port, "workers": self.workers },
                "metrics": { "host": "127.0.0.1", "port": metrics_port },
            },
            "credentials": {
                "issuer": "http://127.0.0.1",
                "api_keys": { "default_ttl": "720h", "prefix": { "current": "talos" } },
            },
            "db": { "dsn": self.dsn, "max_conns": 8, "pool_timeout": "2s", "connect_timeout": "2s" },
            "secrets": { "hmac": { "current": "chaos-hmac-secret-at-least-32-characters-long" } },
            "cache": { "type": self.cache, "ttl": "5m" },
            "log": { "level": "warn", "format": "json" },
        });
        if let Some(r) = self.redis {
            c["cache"]["redis"] = json!({ "addrs": [r.to_string()], "timeout": "1s" });
        }
        for (k, v) in &self.extras {
            set_path(&mut c, k, v.clone());
        }
        c
    }
}

fn set_path(root: &mut Value, dotted: &str, v: Value) {
    let mut cur = root;
    let parts: Vec<&str> = dotted.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    cur[parts[parts.len() - 1]] = v;
}

/// A running talos-server.
pub struct Node {
    pub spec: NodeSpec,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Option<Child>,
    pub log: PathBuf,
    config: PathBuf,
    bin: PathBuf,
}

impl Node {
    pub async fn start(bin: &Path, work: &Path, spec: NodeSpec) -> Result<Node> {
        let port = free_port()?;
        let mut metrics = free_port()?;
        while metrics == port {
            metrics = free_port()?;
        }
        let config = work.join(format!("{}.yaml", spec.name));
        // YAML is a superset of JSON.
        std::fs::write(
            &config,
            serde_json::to_string_pretty(&spec.config(port, metrics))?,
        )?;
        let log = work.join(format!("{}.log", spec.name));
        let mut node = Node {
            addr: loopback(port),
            pid: 0,
            child: None,
            log,
            config,
            bin: bin.to_path_buf(),
            spec,
        };
        node.spawn(work).await?;
        Ok(node)
    }

    async fn spawn(&mut self, work: &Path) -> Result<()> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        // Inherited TALOS_* variables would override the harness's configuration.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TALOS_") {
                cmd.env_remove(&k);
            }
        }
        let child = cmd
            .current_dir(work)
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.pid = child.id().unwrap_or(0);
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if alive(self.addr).await {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                bail!(
                    "{} exited with {status} before answering; log:\n{}",
                    self.spec.name,
                    tail(&self.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} did not answer on {}", self.spec.name, self.addr)
    }

    /// Starts the same node again (same port, config and log).
    pub async fn restart(&mut self, work: &Path) -> Result<()> {
        self.kill9().await;
        self.spawn(work).await
    }

    pub fn signal(&self, sig: &str) {
        if self.pid != 0 {
            let _ = std::process::Command::new("kill")
                .args([&format!("-{sig}"), &self.pid.to_string()])
                .status();
        }
    }

    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// Waits up to `limit` for the process to exit; Some(exit status text) if it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<String> {
        let c = self.child.as_mut()?;
        match tokio::time::timeout(limit, c.wait()).await {
            Ok(Ok(s)) => {
                self.child = None;
                Some(s.to_string())
            }
            _ => None,
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// (RSS in KiB, open file descriptors) from /proc.
    pub fn rss_fds(&self) -> (u64, u64) {
        proc_rss_fds(self.pid)
    }
}

pub fn proc_rss_fds(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    (rss, fds)
}

async fn alive(addr: SocketAddr) -> bool {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
    else {
        return false;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET /health/alive HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    read.is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `talos-server migrate up` against `dsn`.
pub async fn migrate(bin: &Path, dsn: &str) -> Result<()> {
    let out = Command::new(bin)
        .args(["migrate", "up", "--database", dsn])
        .env_remove("TALOS_DB_DSN")
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "migrate up {dsn}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
