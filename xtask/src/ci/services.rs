//! `cargo xtask services`: the Debian packages CI needs (PostgreSQL, Redis, curl, openssl for the
//! TLS tests' certificates, python3 for the conformance suite and schemathesis), installed when
//! missing, and the shared PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) started when
//! they are not answering. Never restarts or reconfigures a running service.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::{pg, proc};

/// A command CI runs and the packages that provide it.
const NEEDED: &[(&str, &[&str])] = &[
    ("pg_ctlcluster", &["postgresql", "postgresql-client"]),
    ("redis-server", &["redis-server"]),
    ("curl", &["curl"]),
    ("openssl", &["openssl"]),
    ("python3", &["python3"]),
];

fn on_path(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn redis_answers() -> bool {
    proc::sh("redis-cli", &["-h", "127.0.0.1", "-p", "6379", "ping"]).is_some_and(|o| o == "PONG")
}

pub fn run() -> Result<()> {
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .flat_map(|(_, pkgs)| pkgs.iter().copied())
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask services: installing {}", missing.join(" "));
        proc::apt_install(&missing)?;
    }
    let version = pg::ensure_shared()?;
    eprintln!("xtask services: PostgreSQL {version} on 127.0.0.1:5432");
    if !redis_answers() {
        eprintln!("xtask services: starting Redis");
        let _ = Command::new("redis-server")
            .args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .status();
        for _ in 0..30 {
            if redis_answers() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    ensure!(redis_answers(), "Redis does not answer on 127.0.0.1:6379");
    eprintln!("xtask services: Redis on 127.0.0.1:6379");
    Ok(())
}
