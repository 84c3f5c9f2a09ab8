//! The harness's own services: a Redis server on a free port and `talos-server` nodes (its
//! PostgreSQL cluster is `crate::pg::Cluster`). Every one is torn down when its guard drops,
//! including on an error or Ctrl-C, so the machine's shared PostgreSQL (5432) and Redis (6379)
//! are never touched.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::proc::{
    TmpDir, free_port, free_port_pair, http_alive, loopback, tail, without_talos_env,
};

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
            dir: TmpDir::new("chaos-redis")?,
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
        let (port, metrics) = free_port_pair()?;
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
        without_talos_env(cmd.as_std_mut());
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
            let addr = self.addr;
            if tokio::task::spawn_blocking(move || http_alive(addr))
                .await
                .unwrap_or(false)
            {
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
        crate::proc::rss_fds(self.pid)
    }
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
