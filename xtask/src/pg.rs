//! PostgreSQL for the harnesses, always as the trusted `postgres` user on 127.0.0.1:
//! - the machine's shared server on port 5432 (tests, bench, conformance), started the way Debian
//!   starts it when it is down, with databases created and dropped by name;
//! - a private cluster (`Cluster`: `initdb` as `postgres` on a free port, its socket in its own
//!   directory) that chaos and soak stop, stall and lock without touching the shared one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Child;

use crate::proc::{TmpDir, free_port, loopback, sh};

/// The shared server's port.
pub const SHARED_PORT: u16 = 5432;

/// The DSN talos-server uses for database `db` reached at `addr`.
pub fn dsn(addr: SocketAddr, db: &str) -> String {
    format!("postgres://postgres@{addr}/{db}?sslmode=disable")
}

/// A client tool (`psql`, `createdb`, `pgbench`, …) pointed at the server on `port`; the
/// server's notices (`dropdb --if-exists` of a missing database) are not printed.
pub fn client(tool: &str, port: u16) -> Command {
    let mut c = Command::new(tool);
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .env("PGOPTIONS", "-c client_min_messages=warning");
    c
}

/// `psql` running one statement against `db`, unaligned and tuples only.
pub fn psql_command(port: u16, db: &str, sql: &str) -> Command {
    let mut c = client("psql", port);
    c.args(["-X", "-A", "-t", "-d", db, "-c", sql]);
    c
}

fn shared_ready() -> bool {
    Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", &SHARED_PORT.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// The shared server, started with `pg_ctlcluster` (Debian's first installed cluster) when it is
/// not answering; returns its version.
pub fn ensure_shared() -> Result<String> {
    if !shared_ready() {
        eprintln!("xtask: starting PostgreSQL");
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|d| {
                let mut v: Vec<String> = d
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect();
                v.sort();
                v.into_iter().next()
            })
            .context("PostgreSQL is not running and not installed (/etc/postgresql)")?;
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .status();
        for _ in 0..30 {
            if shared_ready() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        ensure!(
            shared_ready(),
            "PostgreSQL did not start on 127.0.0.1:{SHARED_PORT}"
        );
    }
    let port = SHARED_PORT.to_string();
    let args = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-tAc",
        "SHOW server_version",
    ];
    Ok(sh("psql", &args).unwrap_or_default())
}

pub fn drop_database(port: u16, name: &str) -> Result<()> {
    let status = client("dropdb", port)
        .args(["--if-exists", name])
        .status()
        .context("running dropdb")?;
    ensure!(status.success(), "dropdb {name} failed");
    Ok(())
}

/// Drops `name` if it exists and creates it empty.
pub fn fresh_database(port: u16, name: &str) -> Result<()> {
    drop_database(port, name)?;
    let status = client("createdb", port)
        .arg(name)
        .status()
        .context("running createdb")?;
    ensure!(status.success(), "createdb {name} failed");
    Ok(())
}

/// A server-side tool (`initdb`, `pg_ctl`) of the highest installed major version; else whatever
/// is on PATH.
fn server_bin(tool: &str) -> PathBuf {
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

/// `bin` run as the `postgres` user (initdb and pg_ctl refuse to run as root).
fn as_postgres(bin: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin);
    c
}

/// The `application_name` of `Cluster::hold_lock`'s session, so it can be found and ended.
const LOCK_APP: &str = "talos-chaos-lock";

/// A private PostgreSQL cluster with a database `talos`; stopped (immediately) on drop.
pub struct Cluster {
    pub port: u16,
    pub dir: TmpDir,
    running: bool,
}

impl Cluster {
    pub async fn start() -> Result<Cluster> {
        let dir = TmpDir::new("chaos-pg")?;
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir.path)
            .status()?;
        ensure!(st.success(), "chown postgres {}", dir.path.display());
        let mut initdb = as_postgres(&server_bin("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        let out = tokio::process::Command::from(initdb)
            .output()
            .await
            .context("running initdb as postgres")?;
        ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Cluster {
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

    /// The DSN of database `db` reached through `addr` (the cluster itself or a proxy).
    pub fn dsn_via(&self, addr: SocketAddr, db: &str) -> String {
        dsn(addr, db)
    }

    fn pg_ctl(&self) -> Command {
        let mut c = as_postgres(&server_bin("pg_ctl"));
        c.arg("-D").arg(self.dir.join("data"));
        c
    }

    pub async fn start_again(&mut self) -> Result<()> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path.display()
        );
        let mut cmd = self.pg_ctl();
        cmd.arg("-l")
            .arg(self.dir.join("pg.log"))
            .args(["-w", "-t", "30", "-o", &opts, "start"])
            .stdout(Stdio::null());
        let out = tokio::process::Command::from(cmd).output().await?;
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
        let mut cmd = self.pg_ctl();
        cmd.args(["-w", "-t", "30", "-m", mode, "stop"]);
        let out = tokio::process::Command::from(cmd).output().await?;
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
        let out = tokio::process::Command::from(psql_command(self.port, db, sql))
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
        let mut child = tokio::process::Command::from(psql_command(self.port, db, &sql))
            .env("PGAPPNAME", LOCK_APP)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        // Wait until the lock is granted.
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

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .pg_ctl()
                .args(["-w", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_point_at_loopback_as_postgres() {
        let c = psql_command(5433, "talos", "SELECT 1");
        let args: Vec<_> = c.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "-h",
                "127.0.0.1",
                "-p",
                "5433",
                "-U",
                "postgres",
                "-X",
                "-A",
                "-t",
                "-d",
                "talos",
                "-c",
                "SELECT 1"
            ]
        );
        assert_eq!(
            dsn(loopback(5432), "x"),
            "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"
        );
    }
}
