//! `cargo xtask soak [--minutes N]`: a talos-server on the harness's own PostgreSQL cluster under
//! half load (a fixed request rate, half of what 64 connections reach, from a bounded client on
//! loopback), with RSS, open files and p99 sampled every 10 s. Fails on any error, or on a
//! growth trend in RSS or open files.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

use super::Ctx;
use super::client::{Api, Tally};
use super::env::migrate;
use crate::pg::Cluster;
use crate::proc::TmpDir;
use crate::workspace::target_dir;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 10)]
    pub minutes: u64,
    /// Requests per second (default: half of the rate 64 connections reach).
    #[arg(long)]
    pub rate: Option<u64>,
    #[arg(long)]
    pub server: Option<PathBuf>,
    #[arg(long)]
    pub no_build: bool,
}

#[derive(Serialize)]
struct Sample {
    t_s: u64,
    rss_kib: u64,
    fds: u64,
    requests: u64,
    errors: u64,
    p99_ms: f64,
    skipped: u64,
}

pub fn run(args: Args) -> Result<()> {
    super::block_on(soak(args))
}

async fn soak(args: Args) -> Result<()> {
    let work = TmpDir::new("chaos-soak")?;
    let bin = super::server_binary(args.server.clone(), args.no_build, &work.path)?;
    let ctx = Ctx {
        bin,
        work,
        short: false,
        extras: Vec::new(),
        max_inflight: false,
        missing: Vec::new(),
        seq: Default::default(),
    };
    let pg = Cluster::start().await?;
    let dsn = pg.dsn_via(pg.addr(), "talos");
    migrate(&ctx.bin, &dsn).await?;
    let node = ctx.node(ctx.spec("soak", &dsn, "memory")).await?;
    let api = Api::new(node.addr, Duration::from_secs(10), false)?;
    let actor = ctx.tag("soak");
    let mut keys = Vec::new();
    for _ in 0..50 {
        keys.push(api.issue(&actor).await?.1);
    }
    // Saturation rate: 64 loops of cached verifies for 5 s.
    let rate = match args.rate {
        Some(r) => r,
        None => {
            let start = Instant::now();
            let n = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for i in 0..64 {
                let (api, key, n) = (api.clone(), keys[i % keys.len()].clone(), n.clone());
                tasks.push(tokio::spawn(async move {
                    while start.elapsed() < Duration::from_secs(5) {
                        api.verify(&key).await;
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let sat = n.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
            eprintln!("xtask soak: saturation {sat:.0} req/s; soaking at half");
            ((sat / 2.0) as u64).max(10)
        }
    };
    let total = Duration::from_secs(args.minutes * 60);
    eprintln!("xtask soak: {rate} req/s for {} min", args.minutes);
    // Work is released in 10 ms ticks; at most 256 requests in flight (a tick that finds no
    // free slot is counted as skipped: the server fell behind the rate).
    let window = Arc::new(Mutex::new(Tally::default()));
    let skipped = Arc::new(AtomicU64::new(0));
    let errors_total = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(Semaphore::new(256));
    let per_tick = rate as f64 / 100.0;
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut owed = 0.0;
    let mut seq: u64 = 0;
    let mut next_sample = Duration::from_secs(10);
    while start.elapsed() < total {
        tick.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            seq += 1;
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (api, window, errs) = (api.clone(), window.clone(), errors_total.clone());
            let key = keys[(seq as usize) % keys.len()].clone();
            let actor = actor.clone();
            tokio::spawn(async move {
                // 98% cached verifies, 1% storage verifies, 1% issues.
                let t = match seq % 100 {
                    0 => api.issue_timed(&actor).await,
                    1 => api.verify_no_cache(&key).await,
                    _ => api.verify(&key).await,
                };
                let good = t.answer == super::client::Answer::Valid || t.answer.is_http(201);
                if !good {
                    errs.fetch_add(1, Ordering::Relaxed);
                }
                window.lock().await.add(&t);
                drop(permit);
            });
        }
        if start.elapsed() >= next_sample {
            next_sample += Duration::from_secs(10);
            let w = std::mem::take(&mut *window.lock().await);
            let (rss, fds) = node.rss_fds();
            let errors = w.count()
                - w.answers.get("valid").copied().unwrap_or(0)
                - w.answers.get("http 201").copied().unwrap_or(0);
            let s = Sample {
                t_s: start.elapsed().as_secs(),
                rss_kib: rss,
                fds,
                requests: w.count(),
                errors,
                p99_ms: w.percentile(99.0).as_secs_f64() * 1000.0,
                skipped: skipped.swap(0, Ordering::Relaxed),
            };
            eprintln!(
                "xtask soak: t={:>4}s rss={:>6} KiB fds={:>4} req={:>6} err={} p99={:.1} ms skipped={}{}",
                s.t_s,
                s.rss_kib,
                s.fds,
                s.requests,
                s.errors,
                s.p99_ms,
                s.skipped,
                if errors > 0 {
                    format!(" ({})", w.summary())
                } else {
                    String::new()
                }
            );
            samples.push(s);
        }
    }
    // Let the last requests finish.
    let _ = tokio::time::timeout(Duration::from_secs(15), sem.acquire_many(256)).await;
    let errors = errors_total.load(Ordering::Relaxed);
    let verdict = trend(&samples);
    let out = target_dir().join("chaos");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("soak.json"),
        serde_json::to_string_pretty(&json!({
            "minutes": args.minutes, "rate": rate, "errors": errors,
            "trend": verdict, "samples": samples,
        }))?,
    )?;
    eprintln!("xtask soak: {errors} errors; {}", verdict.join("; "));
    if errors > 0 || verdict.iter().any(|v| v.starts_with("GROWTH")) {
        bail!("soak failed");
    }
    Ok(())
}

/// Compares the mean of the first and the last third of the samples after a one-minute warm-up
/// (the allocator and caches settle first), and the least-squares slope over the same samples.
/// Name, value of a sample, relative and absolute growth that count as a trend.
type Metric<'a> = (&'a str, &'a dyn Fn(&Sample) -> f64, f64, f64);

fn trend(s: &[Sample]) -> Vec<String> {
    let warm: Vec<&Sample> = s.iter().filter(|x| x.t_s > 60).collect();
    if warm.len() < 6 {
        return vec![format!(
            "too few samples after warm-up ({}) for a trend",
            warm.len()
        )];
    }
    let third = warm.len() / 3;
    let mean = |v: &[&Sample], f: &dyn Fn(&Sample) -> f64| {
        v.iter().map(|x| f(x)).sum::<f64>() / v.len() as f64
    };
    let mut out = Vec::new();
    let metrics: [Metric<'_>; 3] = [
        ("rss", &|x| x.rss_kib as f64, 0.10, 4096.0),
        ("fds", &|x| x.fds as f64, 0.10, 8.0),
        ("p99", &|x| x.p99_ms, 0.50, 2.0),
    ];
    for (name, f, rel, abs) in metrics {
        let first = mean(&warm[..third], f);
        let last = mean(&warm[warm.len() - third..], f);
        let slope = slope(&warm, f) * 60.0;
        let grew = last - first > abs && last > first * (1.0 + rel) && slope > 0.0;
        out.push(format!(
            "{}{name}: {first:.1} → {last:.1} (slope {slope:+.2}/min)",
            if grew { "GROWTH " } else { "" }
        ));
    }
    out
}

fn slope(v: &[&Sample], f: &dyn Fn(&Sample) -> f64) -> f64 {
    let n = v.len() as f64;
    let mx = v.iter().map(|x| x.t_s as f64).sum::<f64>() / n;
    let my = v.iter().map(|x| f(x)).sum::<f64>() / n;
    let num: f64 = v.iter().map(|x| (x.t_s as f64 - mx) * (f(x) - my)).sum();
    let den: f64 = v.iter().map(|x| (x.t_s as f64 - mx).powi(2)).sum();
    if den == 0.0 { 0.0 } else { num / den }
}
