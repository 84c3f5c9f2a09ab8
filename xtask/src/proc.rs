//! Processes the harnesses start, shared by bench, chaos, docs-check and the CI commands: free
//! loopback ports, temporary directories removed on drop, a server process that is waited on
//! until `/health/alive` answers and stopped gracefully on drop, log tails for errors, and
//! Debian packages for missing tools.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A port nothing listens on right now (the kernel's pick for an ephemeral bind).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Two different free ports (API and metrics): both are bound at once, so they cannot coincide.
pub fn free_port_pair() -> Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    tail_text(&text, n)
}

pub fn tail_text(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The trimmed stdout of a command that succeeded; `None` when it failed or could not start.
pub fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `apt-get install` of `packages` (after an `apt-get update` when the package lists are stale).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        ensure!(
            install(),
            "could not install {} (apt-get install -y)",
            packages.join(" ")
        );
    }
    Ok(())
}

/// Removes inherited `TALOS_*` variables the caller did not set on `cmd` itself: they would
/// override the configuration a harness writes.
pub fn without_talos_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TALOS_") && !cmd.get_envs().any(|(e, _)| e == k) {
            cmd.env_remove(&k);
        }
    }
}

/// `GET /health/alive` answers 200 (1 s to connect, 2 s to answer). Plain blocking I/O, so it
/// also works before an async runtime exists.
pub fn http_alive(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health/alive HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200")
}

/// A directory under the system temp directory, removed on drop (after unmounting anything
/// mounted below it).
pub struct TmpDir {
    pub path: PathBuf,
    mounts: Vec<PathBuf>,
}

impl TmpDir {
    /// `/tmp/talos-<tag>-<pid>-<nanos>`.
    pub fn new(tag: &str) -> Result<TmpDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("talos-{tag}-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TmpDir {
            path,
            mounts: Vec::new(),
        })
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    /// Mounts a tmpfs of `size` (e.g. "4M") at `sub`; unmounted on drop.
    pub fn mount_tmpfs(&mut self, sub: &str, size: &str) -> Result<PathBuf> {
        let dir = self.join(sub);
        std::fs::create_dir_all(&dir)?;
        let ok = Command::new("mount")
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
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// (resident memory in KiB, open file descriptors) of process `pid`, from /proc; zeros when it
/// cannot be read.
pub fn rss_fds(pid: u32) -> (u64, u64) {
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

/// A server process (talos-server or the baseline) on 127.0.0.1, its output in a log file.
/// Stopped with SIGTERM (then SIGKILL after 15 s) when dropped.
pub struct Server {
    name: String,
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    /// Spawns `cmd` (inherited `TALOS_*` variables removed) and waits up to 60 s until
    /// `/health/alive` answers on `port`; fails early, with the log's tail, if it exits first.
    pub fn start(name: &str, mut cmd: Command, port: u16, log: &Path) -> Result<Server> {
        without_talos_env(&mut cmd);
        let out = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut server = Server {
            name: name.into(),
            child: Some(child),
            addr: loopback(port),
            log: log.to_path_buf(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http_alive(self.addr) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "{} exited with {status} before answering; log:\n{}",
                    self.name,
                    tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{} did not answer on {}; log:\n{}",
            self.name,
            self.addr,
            tail(&self.log, 40)
        )
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM (graceful), then SIGKILL after 15 s.
    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_the_last_lines() {
        assert_eq!(tail_text("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_text("a", 5), "a");
        assert_eq!(tail_text("", 5), "");
    }

    #[test]
    fn a_port_pair_is_two_ports() {
        let (a, b) = free_port_pair().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn nothing_listening_is_not_alive() {
        let port = free_port().unwrap();
        assert!(!http_alive(loopback(port)));
    }
}
