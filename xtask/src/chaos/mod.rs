//! `cargo xtask chaos [--short]`: the fault-injection suite of issue 11.
//!
//! Starts its own PostgreSQL cluster and Redis on free ports (never the shared 5432/6379), a
//! stall proxy in front of each where a scenario needs one, and live `talos-server` nodes, then
//! injects one fault per scenario and checks, from outside: no revoked, expired or unknown key is
//! ever answered valid; answers come within the configured bound; the node recovers without a
//! restart (timed). Writes `<target>/chaos/report.json`; exits non-zero when a check fails.
//!
//! `cargo xtask soak [--minutes N]`: see `soak.rs`.

mod client;
mod db;
mod env;
mod nodes;
pub mod soak;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::proc::TmpDir;
use crate::workspace::{self, target_dir};
use client::Tally;
use env::{Node, NodeSpec};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// CI subset (PostgreSQL stopped, Redis stopped/stalled, missed invalidation, kill -9
    /// during a batch import), under 3 minutes.
    #[arg(long)]
    pub short: bool,
    /// Only these scenarios (letters a..h), e.g. `--only a,d`.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// talos-server binary to drive (default: build it and use target/debug/talos-server).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Do not run `cargo build --bin talos-server` first.
    #[arg(long)]
    pub no_build: bool,
}

/// Resilience settings of issue 11 / decisions.md "Resilience" the harness asks for. A server
/// that does not know one refuses to start (unknown keys are an error), so each is probed first
/// and only the supported ones are written; the report says which were missing.
pub const REQUEST_TIMEOUT_S: u64 = 3;
/// Answers must come within the request timeout plus this margin.
pub const BOUND: Duration = Duration::from_secs(REQUEST_TIMEOUT_S + 2);

fn wanted_extras() -> Vec<(&'static str, Value)> {
    vec![
        ("db.statement_timeout", json!("2s")),
        (
            "serve.http.request_timeout",
            json!(format!("{REQUEST_TIMEOUT_S}s")),
        ),
        ("serve.http.client_timeout", json!("5s")),
    ]
}

pub struct Ctx {
    pub bin: PathBuf,
    pub work: TmpDir,
    pub short: bool,
    /// Supported resilience keys (from `wanted_extras`) plus whether `max_inflight` is.
    pub extras: Vec<(&'static str, Value)>,
    pub max_inflight: bool,
    pub missing: Vec<String>,
    seq: std::sync::atomic::AtomicU32,
}

impl Ctx {
    pub fn spec(&self, name: &str, dsn: &str, cache: &'static str) -> NodeSpec {
        let mut s = NodeSpec::new(name, dsn, cache);
        s.extras = self.extras.clone();
        s
    }

    pub async fn node(&self, spec: NodeSpec) -> Result<Node> {
        Node::start(&self.bin, &self.work.path, spec).await
    }

    /// A unique tag for actor ids and imported keys of this run.
    pub fn tag(&self, what: &str) -> String {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("chaos-{what}-{}-{n}", std::process::id())
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub id: String,
    pub title: String,
    pub checks: Vec<Check>,
    /// Per probe (e.g. "verify revoked"): answers seen and latencies.
    pub rows: Vec<Row>,
    pub recovery_ms: Option<u64>,
    pub notes: Vec<String>,
    pub skipped: Option<String>,
    pub error: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Row {
    pub probe: String,
    pub answers: String,
    pub count: u64,
    pub max_ms: u64,
    pub p99_ms: u64,
}

impl Report {
    pub fn new(id: &str, title: &str) -> Report {
        Report {
            id: id.into(),
            title: title.into(),
            ..Report::default()
        }
    }

    pub fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// The invariant: `what` (revoked / unknown / expired) never answered valid.
    pub fn never_valid(&mut self, what: &str, t: &Tally) {
        let bad = t.answers.get("valid").copied().unwrap_or(0);
        self.check(
            &format!("{what} never valid"),
            bad == 0,
            format!("{bad} of {} answers valid", t.count()),
        );
    }

    /// Every answer of `t` within `bound`.
    pub fn bounded(&mut self, what: &str, t: &Tally, bound: Duration) {
        self.check(
            &format!("{what} answered within {} ms", bound.as_millis()),
            t.count() > 0 && t.max <= bound && !t.answers.contains_key("client timeout"),
            format!("max {} ms over {} answers", t.max.as_millis(), t.count()),
        );
    }

    pub fn row(&mut self, probe: &str, t: &Tally) {
        if let Some(b) = &t.broken {
            self.note(format!("{probe}: a broken connection said: {b}"));
        }
        self.rows.push(Row {
            probe: probe.into(),
            answers: t.summary(),
            count: t.count(),
            max_ms: t.max.as_millis() as u64,
            p99_ms: t.percentile(99.0).as_millis() as u64,
        });
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.ok)
    }

    fn status(&self) -> &'static str {
        if self.skipped.is_some() {
            "SKIP"
        } else if self.passed() {
            "PASS"
        } else {
            "FAIL"
        }
    }

    fn print(&self) {
        eprintln!("\n== {} {}: {}", self.id, self.title, self.status());
        if let Some(s) = &self.skipped {
            eprintln!("   skipped: {s}");
        }
        if let Some(e) = &self.error {
            eprintln!("   error: {e}");
        }
        for r in &self.rows {
            eprintln!(
                "   {:<34} max {:>6} ms  p99 {:>6} ms  {}",
                r.probe, r.max_ms, r.p99_ms, r.answers
            );
        }
        if let Some(ms) = self.recovery_ms {
            eprintln!("   recovery without restart: {ms} ms");
        }
        for c in &self.checks {
            eprintln!(
                "   [{}] {} ({})",
                if c.ok { " ok " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        for n in &self.notes {
            eprintln!("   note: {n}");
        }
    }
}

/// Polls `f` every 100 ms until it holds or `limit` passes; the time it took.
pub async fn recover(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

const SCENARIOS: [(&str, &str); 8] = [
    ("a", "PostgreSQL stopped and restarted"),
    ("b", "PostgreSQL stalled (proxy stall, table lock)"),
    (
        "c",
        "Redis stopped/restarted and stalled, revoke during the outage (2 nodes)",
    ),
    ("d", "two nodes, missed invalidation"),
    ("e", "SIGTERM under load"),
    ("f", "kill -9 during a batch import of 1000 keys"),
    ("g", "SQLite on a full / read-only disk"),
    ("h", "overload at 10x the saturation connection count"),
];

const SHORT: [&str; 4] = ["a", "c", "d", "f"];

pub fn run(args: Args) -> Result<()> {
    block_on(run_async(args))
}

/// Runs `f` on a two-thread runtime; Ctrl-C drops it, so every service guard tears down.
pub fn block_on(f: impl Future<Output = Result<()>>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        tokio::select! {
            r = f => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted (services torn down)"),
        }
    })
}

/// Builds talos-server unless told not to, and copies it to the work directory so a concurrent
/// build cannot swap the binary under a running scenario.
pub fn server_binary(server: Option<PathBuf>, no_build: bool, work: &Path) -> Result<PathBuf> {
    let src = match server {
        Some(p) => p,
        None => {
            if !no_build {
                workspace::cargo_build(&["--bin", "talos-server"])?;
            }
            target_dir().join("debug/talos-server")
        }
    };
    let dst = work.join("talos-server");
    std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
    Ok(dst)
}

async fn run_async(args: Args) -> Result<()> {
    let work = TmpDir::new("chaos-work")?;
    let bin = server_binary(args.server.clone(), args.no_build, &work.path)?;
    let selected: Vec<&str> = SCENARIOS
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| {
            if !args.only.is_empty() {
                args.only.iter().any(|o| o == id)
            } else {
                !args.short || SHORT.contains(id)
            }
        })
        .collect();
    let mut ctx = Ctx {
        bin,
        work,
        short: args.short,
        extras: Vec::new(),
        max_inflight: false,
        missing: Vec::new(),
        seq: Default::default(),
    };
    probe_extras(&mut ctx).await?;
    let started = Instant::now();
    let mut reports = Vec::new();
    for id in selected {
        let title = SCENARIOS.iter().find(|(i, _)| *i == id).map_or("", |s| s.1);
        eprintln!("\nxtask chaos: scenario {id}: {title}");
        let mut rep = Report::new(id, title);
        let t0 = Instant::now();
        let res = match id {
            "a" => db::pg_stopped(&ctx, &mut rep).await,
            "b" => db::pg_stalled(&ctx, &mut rep).await,
            "c" => nodes::redis_outage(&ctx, &mut rep).await,
            "d" => nodes::missed_invalidation(&ctx, &mut rep).await,
            "e" => nodes::sigterm(&ctx, &mut rep).await,
            "f" => db::kill_batch(&ctx, &mut rep).await,
            "g" => db::sqlite_disk(&ctx, &mut rep).await,
            "h" => nodes::overload(&ctx, &mut rep).await,
            _ => unreachable!(),
        };
        if let Err(e) = res {
            rep.error = Some(format!("{e:#}"));
        }
        rep.note(format!("scenario took {:.1} s", t0.elapsed().as_secs_f64()));
        rep.print();
        reports.push(rep);
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.skipped.is_none() && !r.passed())
        .map(|r| r.id.as_str())
        .collect();
    let out = target_dir().join("chaos");
    std::fs::create_dir_all(&out)?;
    let file = out.join(if args.short {
        "report-short.json"
    } else {
        "report.json"
    });
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&json!({
            "short": args.short,
            "missing_settings": ctx.missing,
            "seconds": started.elapsed().as_secs(),
            "scenarios": reports,
        }))?,
    )?;
    eprintln!(
        "\nxtask chaos: {} scenario(s) in {:.0} s; report {}",
        reports.len(),
        started.elapsed().as_secs_f64(),
        file.display()
    );
    if !ctx.missing.is_empty() {
        eprintln!(
            "xtask chaos: the server rejects these settings (ran without them): {}",
            ctx.missing.join(", ")
        );
    }
    if failed.is_empty() {
        eprintln!("xtask chaos: all checks passed");
        Ok(())
    } else {
        bail!("failed scenarios: {}", failed.join(", "))
    }
}

/// Starts a throwaway SQLite node with each wanted setting alone: the server refuses unknown
/// keys, so a refusal means "not implemented yet".
async fn probe_extras(ctx: &mut Ctx) -> Result<()> {
    let mut wanted = wanted_extras();
    wanted.push(("serve.http.max_inflight", json!(64)));
    let dsn = format!("sqlite://{}", ctx.work.join("probe.db").display());
    env::migrate(&ctx.bin, &dsn).await?;
    for (k, v) in wanted {
        let mut spec = NodeSpec::new("probe", &dsn, "noop");
        spec.extras = vec![(k, v.clone())];
        match Node::start(&ctx.bin, &ctx.work.path, spec).await {
            Ok(mut n) => {
                n.kill9().await;
                if k == "serve.http.max_inflight" {
                    ctx.max_inflight = true;
                } else {
                    ctx.extras.push((k, v));
                }
            }
            Err(e) => {
                let first = format!("{e:#}");
                let why = first
                    .lines()
                    .rev()
                    .find(|l| l.contains(k.rsplit('.').next().unwrap_or(k)))
                    .unwrap_or("refused to start")
                    .chars()
                    .take(200)
                    .collect::<String>();
                eprintln!("xtask chaos: server rejects `{k}`: {why}");
                ctx.missing.push(k.to_string());
            }
        }
        let _ = std::fs::remove_file(ctx.work.join("probe.log"));
    }
    Ok(())
}
