//! What a `cargo xtask bench` run measured, as written to `target/bench/results.json`: plain
//! data, filled in by `bench` and read by `report`, which depend on it and not on each other.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    Memory,
    Noop,
}

impl CacheKind {
    pub fn name(self) -> &'static str {
        match self {
            CacheKind::Memory => "memory",
            CacheKind::Noop => "noop",
        }
    }
}

/// How hard a run pushes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Load {
    pub connections: usize,
    pub threads: usize,
    pub seconds: u64,
    /// Think time per connection between a response and the next request (0 = none).
    pub think_ms: u64,
}

/// A load generator's figures for one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub requests: u64,
    pub duration_us: u64,
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    /// Answers with a status of 400 or more.
    pub status_errors: u64,
    pub timeouts: u64,
}

impl Outcome {
    pub fn errors(&self) -> u64 {
        self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.status_errors
            + self.timeouts
    }
}

/// One measured run (read back by `cargo xtask bench-charts`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub target: String,
    pub backend: Option<Backend>,
    pub cache: Option<CacheKind>,
    pub scenario: String,
    pub title: String,
    /// `saturation` or `half`.
    pub load_kind: Cow<'static, str>,
    /// `wrk` or `oha` (rate-limited).
    pub generator: Cow<'static, str>,
    pub load: Load,
    /// For half-load runs: half of the saturation throughput.
    pub target_rps: Option<f64>,
    pub result: Outcome,
    /// Saturation runs: the baseline's throughput with the same load, measured right after.
    pub paired_baseline_rps: Option<f64>,
    /// rustc/cargo processes seen just before or after the run (other builds on the machine).
    pub interference: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Pgbench {
    pub clients: usize,
    pub threads: usize,
    pub seconds: u64,
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub command: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Conditions {
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub waited_for_quiet_s: u64,
    pub quiet_at_start: bool,
    pub busy_at_start: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub seconds: u64,
    pub calibration_seconds: u64,
    pub connections: usize,
    pub threads: usize,
    pub workers: usize,
    pub log_level: String,
    pub binary: String,
    pub wrk: String,
    pub oha: Option<String>,
    pub postgres: Option<String>,
    pub seeded_keys: usize,
}

/// A goal of issue 7 and what the run measured for it.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    pub goal: String,
    pub target: String,
    pub measured: String,
    /// `None` when the run did not measure it.
    pub met: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub mode: &'static str,
    pub date: String,
    pub commit: String,
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub conditions: Conditions,
    pub runs: Vec<Run>,
    pub pgbench: Vec<Pgbench>,
    pub goals: Vec<Goal>,
}
