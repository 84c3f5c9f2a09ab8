//! Rate-limited runs with oha (crates.io): `-q RATE --latency-correction` paces requests at a
//! fixed rate and measures each latency from the moment its request was due, as wrk2 does, so
//! a stall counts against every request it delays. Used for the half-load runs; wrk, which
//! costs less CPU per request, measures saturation.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::results::{Load, Outcome};

/// Installs oha with `cargo install` when it is missing (no TLS needed here, but oha does not
/// build without a TLS backend: native-tls uses the system's OpenSSL).
pub fn ensure_installed() -> Result<()> {
    if version().is_some() {
        return Ok(());
    }
    eprintln!("xtask: oha not found; installing it with cargo install");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "install",
            "oha",
            "--locked",
            "--no-default-features",
            "--features",
            "native-tls",
        ])
        .status()
        .context("running cargo install oha")?;
    if !status.success() {
        bail!("cargo install oha failed (it needs libssl-dev and pkg-config)");
    }
    version().context("oha still not runnable after installing it")?;
    Ok(())
}

pub fn version() -> Option<String> {
    let out = Command::new("oha").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[derive(Deserialize)]
struct Report {
    summary: Summary,
    #[serde(rename = "latencyPercentiles")]
    percentiles: BTreeMap<String, Option<f64>>,
    #[serde(rename = "statusCodeDistribution", default)]
    status: BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution", default)]
    errors: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Summary {
    total: f64,
    average: Option<f64>,
    slowest: Option<f64>,
}

/// `rate` req/s over `load.connections` connections for `load.seconds`, one JSON body per line of
/// `bodies` (used in turn).
pub fn run(
    url: &str,
    bodies: &Path,
    headers: &[(String, String)],
    rate: f64,
    load: Load,
) -> Result<Outcome> {
    let mut cmd = Command::new("oha");
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "-w",
        "--latency-correction",
    ])
    .args(["-m", "POST", "-T", "application/json"])
    .arg("-c")
    .arg(load.connections.to_string())
    .arg("-z")
    .arg(format!("{}s", load.seconds.max(1)))
    .arg("-q")
    .arg(format!("{}", rate.round().max(1.0)))
    .arg("-Z")
    .arg(bodies);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.arg(url).output().context("running oha")?;
    if !out.status.success() {
        bail!(
            "oha failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let r: Report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "oha output is not its JSON report: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let ms = |key: &str| r.percentiles.get(key).copied().flatten().unwrap_or(0.0) * 1000.0;
    let ok: u64 = r.status.values().sum();
    let status_errors: u64 = r
        .status
        .iter()
        .filter(|(code, _)| code.parse::<u16>().is_ok_and(|c| c >= 400))
        .map(|(_, n)| n)
        .sum();
    let transport_errors: u64 = r.errors.values().sum();
    let secs = r.summary.total.max(1e-9);
    Ok(Outcome {
        requests: ok,
        duration_us: (secs * 1e6) as u64,
        rps: ok as f64 / secs,
        mean_ms: r.summary.average.unwrap_or(0.0) * 1000.0,
        p50_ms: ms("p50"),
        p90_ms: ms("p90"),
        p99_ms: ms("p99"),
        p999_ms: ms("p99.9"),
        max_ms: r.summary.slowest.unwrap_or(0.0) * 1000.0,
        connect_errors: 0,
        read_errors: transport_errors,
        write_errors: 0,
        status_errors,
        timeouts: 0,
    })
}
