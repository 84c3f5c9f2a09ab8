//! The machine a bench runs on and how busy it is: CPU, memory and kernel for the report, the
//! load average, and other builds (rustc/cargo) competing for the cores, which the harness waits
//! out before measuring and records around every run.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::proc::sh;
use crate::results::Machine;

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` prints them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

/// Our own process and its ancestors (the `cargo run` behind `cargo xtask`).
fn ancestors() -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut pid = std::process::id();
    while pid > 1 && out.insert(pid) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        pid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
    }
    out
}

/// rustc/cargo processes other than ours: another build competing for the cores.
pub fn busy_processes() -> Vec<String> {
    let mine = ancestors();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if mine.contains(&pid) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm == "rustc"
            || comm == "cargo"
            || comm.starts_with("cargo-")
            || comm == "clippy-driver"
        {
            out.push(format!("{comm}:{pid}"));
        }
    }
    out
}

/// Waits up to `max_s` seconds for a quiet machine. Returns (seconds waited, quiet, busy).
pub fn wait_quiet(max_s: u64) -> (u64, bool, Vec<String>) {
    let start = Instant::now();
    loop {
        let busy = busy_processes();
        let quiet = load1() < 0.7 && busy.is_empty();
        let waited = start.elapsed().as_secs();
        if quiet || waited >= max_s {
            return (waited, quiet, busy);
        }
        if waited.is_multiple_of(60) {
            eprintln!(
                "xtask: waiting for a quiet machine (load {}, busy: {})",
                loadavg(),
                busy.join(" ")
            );
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let virtualised = field("flags").split_whitespace().any(|f| f == "hypervisor");
    let cpu_model = format!(
        "{} (family {}, model {}{})",
        field("model name"),
        field("cpu family"),
        field("model"),
        if virtualised { ", virtual machine" } else { "" }
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    Machine {
        nproc: sh("nproc", &[])
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        cpu_model,
        kernel: sh("uname", &["-r"]).unwrap_or_default(),
        mem_total,
    }
}

/// The short commit hash, marked when the tree has uncommitted changes.
pub fn git_commit(root: &Path) -> String {
    let root = root.display().to_string();
    let commit = sh("git", &["-C", &root, "rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = sh("git", &["-C", &root, "status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit} (with uncommitted changes)")
    } else {
        commit
    }
}
