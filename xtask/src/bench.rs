//! `cargo xtask bench`: the reproducible load harness of issue 7.
//!
//! Builds the release binaries, measures the actix-web baseline (and `pgbench -S` for
//! PostgreSQL), then starts `talos-server` on SQLite and on PostgreSQL with the `memory` and
//! `noop` caches, seeds keys through the HTTP API, checks every scenario answers as expected and
//! drives each one with wrk over loopback: once at saturation, once at half of that throughput.
//! Writes `target/bench/results.json` and the "HTTP load" section of `docs/benchmarks.md`.
//!
//! `--smoke` runs every scenario for about a second on SQLite only, with the debug binary CI has
//! already built, checks answers and error counts, and writes only `target/bench/smoke.json`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use serde_json::{Value, json};

use crate::baseline::VERIFY_PATH;
use crate::http;
use crate::oha;
use crate::report;
use crate::wrk::{self, Bodies, Load, Outcome, Script};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// About one second per scenario on SQLite only, debug binary, no doc update.
    #[arg(long)]
    pub smoke: bool,
    /// Seconds per measured run (default 10; 1 with --smoke).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Connections at saturation (batch import uses at most 4).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// actix workers for talos-server and the baseline (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Backends to run (default sqlite,postgres; sqlite with --smoke).
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<Backend>,
    /// Only these scenarios (ids as in results.json), e.g. verify_issued_hit,forged.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// talos-server log level (`info` logs one line per request).
    #[arg(long, default_value = "warn")]
    pub log_level: String,
    /// Seconds to wait for a quiet machine (1-min load < 0.7, no rustc/cargo) before measuring.
    #[arg(long)]
    pub quiet_wait: Option<u64>,
    /// Do not build; use the binaries already in target/.
    #[arg(long)]
    pub no_build: bool,
    /// Half load with wrk and fewer connections instead of oha at a fixed rate.
    #[arg(long)]
    pub no_oha: bool,
    /// Do not rewrite docs/benchmarks.md.
    #[arg(long)]
    pub no_doc: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum, Serialize)]
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

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
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

/// The scenarios, in the order they run against one server (writes last).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scenario {
    VerifyIssuedHit,
    VerifyImportedValid,
    VerifyNoCache,
    VerifyImportedUnknown,
    VerifyForged,
    VerifyJwt,
    DeriveJwt,
    Issue,
    BatchImport,
}

pub const ALL: [Scenario; 9] = [
    Scenario::VerifyIssuedHit,
    Scenario::VerifyImportedValid,
    Scenario::VerifyNoCache,
    Scenario::VerifyImportedUnknown,
    Scenario::VerifyForged,
    Scenario::VerifyJwt,
    Scenario::DeriveJwt,
    Scenario::Issue,
    Scenario::BatchImport,
];

const BATCH: usize = 1000;
const ISSUED: &str = "/v2alpha1/admin/issuedApiKeys";
const IMPORTED: &str = "/v2alpha1/admin/importedApiKeys";
const BATCH_IMPORT: &str = "/v2alpha1/admin/importedApiKeys:batchImport";
const DERIVE: &str = "/v2alpha1/admin/apiKeys:derive";

impl Scenario {
    pub fn id(self) -> &'static str {
        match self {
            Scenario::VerifyIssuedHit => "verify_issued",
            Scenario::VerifyImportedValid => "verify_imported",
            Scenario::VerifyNoCache => "verify_no_cache",
            Scenario::VerifyImportedUnknown => "verify_unknown_imported",
            Scenario::VerifyForged => "verify_forged",
            Scenario::VerifyJwt => "verify_jwt",
            Scenario::DeriveJwt => "derive_jwt",
            Scenario::Issue => "issue",
            Scenario::BatchImport => "batch_import_1000",
        }
    }

    pub fn title(self, cache: CacheKind) -> &'static str {
        match (self, cache) {
            (Scenario::VerifyIssuedHit, CacheKind::Memory) => "verify issued key (cache hit)",
            (Scenario::VerifyIssuedHit, CacheKind::Noop) => "verify issued key (storage)",
            (Scenario::VerifyImportedValid, CacheKind::Memory) => "verify imported key (cache hit)",
            (Scenario::VerifyImportedValid, CacheKind::Noop) => "verify imported key (storage)",
            (Scenario::VerifyNoCache, _) => "verify issued key, `Cache-Control: no-cache`",
            (Scenario::VerifyImportedUnknown, _) => "verify unknown imported key",
            (Scenario::VerifyForged, _) => "verify forged key (bad checksum)",
            (Scenario::VerifyJwt, _) => "verify derived JWT",
            (Scenario::DeriveJwt, _) => "derive JWT",
            (Scenario::Issue, _) => "issue key",
            (Scenario::BatchImport, _) => "batch import of 1000 keys",
        }
    }

    /// Scenarios whose cost depends on the cache; the others run only with the memory cache.
    fn runs_with(self, cache: CacheKind) -> bool {
        cache == CacheKind::Memory
            || matches!(
                self,
                Scenario::VerifyIssuedHit
                    | Scenario::VerifyImportedValid
                    | Scenario::VerifyImportedUnknown
            )
    }

    fn saturation_connections(self, connections: usize) -> usize {
        match self {
            // Each request writes 1000 rows; SQLite serialises writers and more concurrency only
            // queues requests behind each other (and toward the pool timeout).
            Scenario::BatchImport => connections.min(4),
            _ => connections,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Scenario::DeriveJwt => DERIVE,
            Scenario::Issue => ISSUED,
            Scenario::BatchImport => BATCH_IMPORT,
            _ => VERIFY_PATH,
        }
    }
}

/// One wrk run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub target: String,
    pub backend: Option<Backend>,
    pub cache: Option<CacheKind>,
    pub scenario: String,
    pub title: String,
    /// `saturation` or `half`.
    pub load_kind: &'static str,
    /// `wrk` or `oha` (rate-limited).
    pub generator: &'static str,
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
    pub goals: Vec<report::Goal>,
}

struct Ctx {
    work: PathBuf,
    seconds: u64,
    calibration: u64,
    connections: usize,
    threads: usize,
    workers: usize,
    log_level: String,
    only: BTreeSet<String>,
    nonce: String,
    /// Half-load runs with oha at a fixed rate.
    oha: bool,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bench_dir = target.join("bench");
    let work = bench_dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seconds = args.duration.unwrap_or(if args.smoke { 1 } else { 10 });
    let backends = if !args.backends.is_empty() {
        args.backends.clone()
    } else if args.smoke {
        vec![Backend::Sqlite]
    } else {
        vec![Backend::Sqlite, Backend::Postgres]
    };
    let known: BTreeSet<&str> = ALL.iter().map(|s| s.id()).collect();
    for id in &args.only {
        ensure!(
            known.contains(id.as_str()),
            "unknown scenario {id:?}; one of {known:?}"
        );
    }
    let ctx = Ctx {
        work: work.clone(),
        seconds,
        calibration: if args.smoke { 0 } else { 2 },
        connections: args.connections.max(1),
        threads: args.threads.max(1),
        workers: args.workers.unwrap_or(nproc),
        log_level: args.log_level.clone(),
        only: args.only.iter().cloned().collect(),
        nonce: format!("{}{}", std::process::id(), unix_secs() % 100_000),
        oha: !args.smoke && !args.no_oha,
    };

    // Tools and binaries.
    wrk::ensure_installed()?;
    let wrk_version = wrk::wrk_version().unwrap_or_default();
    if ctx.oha {
        oha::ensure_installed()?;
    }
    let oha_version = if ctx.oha { oha::version() } else { None };
    let profile = if args.smoke { "debug" } else { "release" };
    if !args.no_build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root).arg("build");
        if args.smoke {
            cmd.args(["--bin", "talos-server"]);
        } else {
            cmd.args(["--release", "--bin", "talos-server", "--bin", "xtask"]);
        }
        eprintln!("xtask: building ({profile})");
        let status = cmd.status().context("running cargo build")?;
        ensure!(status.success(), "cargo build failed");
    }
    let talos_bin = target.join(profile).join("talos-server");
    ensure!(
        talos_bin.exists(),
        "{} is missing (build it or drop --no-build)",
        talos_bin.display()
    );
    let baseline_bin = if args.smoke {
        std::env::current_exe()?
    } else {
        target.join("release").join("xtask")
    };
    ensure!(
        baseline_bin.exists(),
        "{} is missing",
        baseline_bin.display()
    );
    let postgres = if backends.contains(&Backend::Postgres) {
        Some(postgres_ready()?)
    } else {
        None
    };

    // A quiet machine before measuring.
    let quiet_wait = args.quiet_wait.unwrap_or(if args.smoke { 0 } else { 900 });
    let (waited, quiet, busy) = wait_quiet(quiet_wait);
    let loadavg_start = loadavg();
    eprintln!(
        "xtask: load average {loadavg_start} (waited {waited}s, quiet: {quiet}{})",
        if busy.is_empty() {
            String::new()
        } else {
            format!(", busy: {}", busy.join(" "))
        }
    );

    let mut runs = Vec::new();
    let mut pgbench = Vec::new();

    // The framework ceiling. The baseline server stays up: every Talos saturation run is followed
    // by a baseline run with the same load, so each ratio compares runs a few seconds apart.
    let baseline = {
        eprintln!("xtask: baseline (actix-web, fixed answer)");
        let port = free_port()?;
        let mut cmd = Command::new(&baseline_bin);
        cmd.args(["baseline-server", "--port", &port.to_string(), "--workers"])
            .arg(ctx.workers.to_string());
        let server = Server::start("baseline", cmd, port, &work.join("baseline.log"))?;
        let body = json!({ "credential": "talos_v1_baseline" }).to_string();
        let r = http::request(server.addr, "POST", VERIFY_PATH, Some(&body), &[])?;
        r.expect(200, "baseline verify")?;
        let bodies = work.join("baseline.jsonl");
        std::fs::write(&bodies, format!("{body}\n"))?;
        let script = Script {
            path: VERIFY_PATH.into(),
            headers: Vec::new(),
            bodies: Bodies::File(bodies),
        };
        for m in measure(&ctx, &server, "baseline", &script, ctx.connections, None)? {
            runs.push(Run {
                target: "baseline".into(),
                backend: None,
                cache: None,
                scenario: "verify".into(),
                title: "actix-web baseline (fixed JSON answer)".into(),
                load_kind: m.kind,
                generator: m.generator,
                load: m.load,
                target_rps: m.target_rps,
                result: m.result,
                paired_baseline_rps: None,
                interference: m.interference,
            });
        }
        Pair { server, script }
    };

    if !args.smoke && backends.contains(&Backend::Postgres) {
        for clients in BTreeSet::from([ctx.connections, 16]) {
            eprintln!("xtask: pgbench -S with {clients} clients");
            pgbench.push(run_pgbench(&ctx, clients)?);
        }
    }

    for &backend in &backends {
        for cache in [CacheKind::Memory, CacheKind::Noop] {
            if args.smoke && cache == CacheKind::Noop {
                continue;
            }
            let scenarios: Vec<Scenario> = ALL
                .into_iter()
                .filter(|s| s.runs_with(cache))
                .filter(|s| ctx.only.is_empty() || ctx.only.contains(s.id()))
                .collect();
            if scenarios.is_empty() {
                continue;
            }
            runs.extend(run_config(
                &ctx, &talos_bin, backend, cache, &scenarios, args.smoke, &baseline,
            )?);
        }
    }
    baseline.server.stop();

    let machine = machine();
    let commit = git_commit(&root);
    let command = std::iter::once("cargo xtask".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let goals = if args.smoke {
        Vec::new()
    } else {
        report::goals(&runs, &pgbench, ctx.connections)
    };
    let results = Results {
        mode: if args.smoke { "smoke" } else { "full" },
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        commit,
        command,
        machine,
        settings: Settings {
            seconds,
            calibration_seconds: ctx.calibration,
            connections: ctx.connections,
            threads: ctx.threads,
            workers: ctx.workers,
            log_level: ctx.log_level.clone(),
            binary: profile.into(),
            wrk: wrk_version,
            oha: oha_version,
            postgres,
            seeded_keys: seed_count(args.smoke),
        },
        conditions: Conditions {
            loadavg_start,
            loadavg_end: loadavg(),
            waited_for_quiet_s: waited,
            quiet_at_start: quiet,
            busy_at_start: busy,
        },
        runs,
        pgbench,
        goals,
    };
    let json_path = bench_dir.join(if args.smoke {
        "smoke.json"
    } else {
        "results.json"
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)? + "\n")?;
    let table = report::markdown(&results);
    println!("{table}");
    eprintln!("xtask: wrote {}", json_path.display());
    if !args.smoke && !args.no_doc {
        let doc = root.join("docs").join("benchmarks.md");
        report::write_section(&doc, &table)?;
        eprintln!("xtask: updated {}", doc.display());
    }

    // Smoke: every run must have answered, without errors.
    let bad: Vec<String> = results
        .runs
        .iter()
        .filter(|r| r.result.requests == 0 || r.result.errors() > 0)
        .map(|r| {
            format!(
                "{} {} ({}): {} requests, {} errors",
                r.target,
                r.scenario,
                r.load_kind,
                r.result.requests,
                r.result.errors()
            )
        })
        .collect();
    eprintln!(
        "xtask: bench {} in {:.0}s",
        results.mode,
        started.elapsed().as_secs_f64()
    );
    if !bad.is_empty() && args.smoke {
        bail!("runs with errors:\n  {}", bad.join("\n  "));
    }
    if !bad.is_empty() {
        eprintln!("xtask: warning: runs with errors:\n  {}", bad.join("\n  "));
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn seed_count(smoke: bool) -> usize {
    if smoke { 20 } else { 100 }
}

/// One measured run, before it is labelled with its target.
struct Measured {
    kind: &'static str,
    generator: &'static str,
    load: Load,
    target_rps: Option<f64>,
    result: Outcome,
    paired_baseline_rps: Option<f64>,
    interference: Vec<String>,
}

/// The baseline server and what it is sent.
struct Pair {
    server: Server,
    script: Script,
}

/// Saturation (wrk), then half of the throughput it reached (oha at a fixed rate; wrk with fewer
/// connections in smoke mode, without oha, and for batch import whose bodies must all differ).
fn measure(
    ctx: &Ctx,
    server: &Server,
    label: &str,
    script: &Script,
    connections: usize,
    baseline: Option<&Pair>,
) -> Result<Vec<Measured>> {
    let base_url = format!("http://{}/", server.addr);
    let watch = |f: &mut dyn FnMut() -> Result<Outcome>| -> Result<(Outcome, Vec<String>)> {
        let mut seen = busy_processes();
        let out = f()?;
        seen.extend(busy_processes());
        seen.sort();
        seen.dedup();
        Ok((out, seen))
    };
    let run = |load: Load, tag: &str| -> Result<(Outcome, Vec<String>)> {
        let lua = wrk::lua(script, load.think_ms, &format!("{}{tag}", ctx.nonce));
        let file = ctx.work.join(format!("{label}-{tag}.lua"));
        std::fs::write(&file, lua)?;
        watch(&mut || wrk::run(&base_url, &file, load))
    };
    let sat_load = Load {
        connections,
        threads: ctx.threads,
        seconds: ctx.seconds,
        think_ms: 0,
    };
    let (sat, seen) = run(sat_load, "sat")?;
    eprintln!(
        "xtask:   {label} saturation: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
        sat.rps,
        sat.p50_ms,
        sat.p99_ms,
        sat.errors()
    );
    // The paired baseline run (not for batch import, which runs at fewer connections).
    let paired_baseline_rps = match baseline {
        Some(pair) if connections == ctx.connections => {
            let lua = wrk::lua(&pair.script, 0, &ctx.nonce);
            let file = ctx.work.join(format!("{label}-pair.lua"));
            std::fs::write(&file, lua)?;
            let b = wrk::run(&format!("http://{}/", pair.server.addr), &file, sat_load)?;
            eprintln!(
                "xtask:   {label} paired baseline: {:.0} req/s (ratio {:.2})",
                b.rps,
                sat.rps / b.rps.max(1.0)
            );
            Some(b.rps)
        }
        _ => None,
    };
    let mut out = vec![Measured {
        kind: "saturation",
        generator: "wrk",
        load: sat_load,
        target_rps: None,
        result: sat.clone(),
        paired_baseline_rps,
        interference: seen,
    }];
    if sat.rps <= 0.0 {
        return Ok(out);
    }
    let target = sat.rps / 2.0;
    let (generator, load, (half, seen_half)) = match &script.bodies {
        Bodies::File(file) if ctx.oha => {
            let load = Load {
                think_ms: 0,
                ..sat_load
            };
            let url = format!("http://{}{}", server.addr, script.path);
            let measured = watch(&mut || oha::run(&url, file, &script.headers, target, load))?;
            ("oha", load, measured)
        }
        _ => {
            let load = plan_half(ctx, target, connections, |l| run(l, "cal").map(|(o, _)| o))?;
            ("wrk", load, run(load, "half")?)
        }
    };
    eprintln!(
        "xtask:   {label} half load ({generator}): {:.0} req/s (target {:.0}, {} conns{}), p50 {:.2} ms, p99 {:.2} ms, errors {}",
        half.rps,
        target,
        load.connections,
        if load.think_ms > 0 {
            format!(", {} ms apart", load.think_ms)
        } else {
            String::new()
        },
        half.p50_ms,
        half.p99_ms,
        half.errors()
    );
    out.push(Measured {
        kind: "half",
        generator,
        load,
        target_rps: Some(target),
        result: half,
        paired_baseline_rps: None,
        interference: seen_half,
    });
    Ok(out)
}

/// Finds a load that makes about `target` req/s: wrk 4 cannot pace requests at a fixed rate, so
/// half load is a closed loop with fewer connections (no think time), sized from a one-connection
/// run and corrected once. When one connection is already faster than the target (slow scenarios
/// such as batch import), it waits between requests instead (wrk's `delay()`).
fn plan_half(
    ctx: &Ctx,
    target: f64,
    max_connections: usize,
    mut calibrate: impl FnMut(Load) -> Result<Outcome>,
) -> Result<Load> {
    let one = Load {
        connections: 1,
        threads: 1,
        seconds: ctx.calibration.max(1),
        think_ms: 0,
    };
    let with_threads = |connections: usize| Load {
        connections,
        threads: ctx.threads.min(connections).max(1),
        seconds: ctx.seconds,
        think_ms: 0,
    };
    if ctx.calibration == 0 {
        // Smoke: no calibration, a quarter of the connections.
        return Ok(with_threads((max_connections / 4).max(1)));
    }
    let x1 = calibrate(one)?.rps;
    if x1 <= 0.0 {
        return Ok(with_threads(1));
    }
    if (0.8..=1.25).contains(&(x1 / target)) {
        // One connection back to back is close enough.
        return Ok(with_threads(1));
    }
    if x1 > target {
        // One connection is enough: pace it.
        let think =
            |x: f64, t: f64| -> u64 { (t + 1000.0 / target - 1000.0 / x).round().max(1.0) as u64 };
        let mut load = Load {
            think_ms: think(x1, 0.0),
            ..one
        };
        let x = calibrate(load)?.rps;
        if x > 0.0 {
            load.think_ms = think(x, load.think_ms as f64);
        }
        return Ok(Load {
            seconds: ctx.seconds,
            ..load
        });
    }
    let c = ((target / x1).round() as usize).clamp(1, max_connections);
    let x = calibrate(Load {
        seconds: ctx.calibration,
        ..with_threads(c)
    })?
    .rps;
    let c = if x > 0.0 {
        ((c as f64 * target / x).round() as usize).clamp(1, max_connections)
    } else {
        c
    };
    Ok(with_threads(c))
}

/// Keys seeded through the HTTP API before the load runs.
struct Seed {
    issued: Vec<String>,
    forged: Vec<String>,
    imported: Vec<String>,
    unknown: Vec<String>,
    jwts: Vec<String>,
}

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// The same key with one checksum character changed: well formed, wrong HMAC.
fn forge(key: &str) -> String {
    let cut = key.rfind('_').map_or(0, |i| i + 1);
    let mut b = key.as_bytes().to_vec();
    let at = cut + (b.len() - cut) / 2;
    let pos = BASE58.iter().position(|c| *c == b[at]).unwrap_or(0);
    b[at] = BASE58[(pos + 1) % BASE58.len()];
    String::from_utf8(b).unwrap_or_default()
}

fn key_spec(name: &str) -> Value {
    json!({ "name": name, "actor_id": "bench-user", "scopes": ["read"] })
}

fn seed(addr: SocketAddr, n: usize, nonce: &str) -> Result<Seed> {
    let mut issued = Vec::with_capacity(n);
    for _ in 0..n {
        let mut spec = key_spec("bench-issued");
        spec["ttl"] = json!("720h");
        let v = http::post(addr, ISSUED, &spec)?.expect(201, "issue")?;
        let secret = v["secret"].as_str().context("issue answer has no secret")?;
        issued.push(secret.to_string());
    }
    // Half imported one by one, half in one batch.
    let raw = |i: usize| format!("legacy-{nonce}-{i:05}-5f3c9a0e7b214d6a");
    let imported: Vec<String> = (0..n).map(raw).collect();
    for key in &imported[..n / 2] {
        let mut spec = key_spec("bench-imported");
        spec["raw_key"] = json!(key);
        http::post(addr, IMPORTED, &spec)?.expect(201, "import")?;
    }
    let batch: Vec<Value> = imported[n / 2..]
        .iter()
        .map(|k| {
            let mut spec = key_spec("bench-imported");
            spec["raw_key"] = json!(k);
            spec
        })
        .collect();
    if !batch.is_empty() {
        let v = http::post(addr, BATCH_IMPORT, &json!({ "keys": batch }))?
            .expect(200, "batch import")?;
        ensure!(
            v["success_count"].as_u64() == Some(batch.len() as u64),
            "batch import: {v}"
        );
    }
    let mut jwts = Vec::with_capacity(n);
    for key in &issued {
        let v = http::post(addr, DERIVE, &json!({ "credential": key, "ttl": "1h" }))?
            .expect(200, "derive")?;
        let token = v["token"]["token"]
            .as_str()
            .context("derive answer has no token")?;
        jwts.push(token.to_string());
    }
    Ok(Seed {
        forged: issued.iter().map(|k| forge(k)).collect(),
        unknown: (0..n)
            .map(|i| format!("unknown-{nonce}-{i:05}-0d9e8f7a6b5c4d3e"))
            .collect(),
        issued,
        imported,
        jwts,
    })
}

fn verify_once(
    addr: SocketAddr,
    credential: &str,
    headers: &[(&str, &str)],
) -> Result<(Value, String)> {
    let body = json!({ "credential": credential }).to_string();
    let r = http::request(addr, "POST", VERIFY_PATH, Some(&body), headers)?;
    let v = r.expect(200, "verify")?;
    let cache = r.header("ory-talos-cache").unwrap_or("").to_string();
    Ok((v, cache))
}

type Headers = Vec<(String, String)>;

/// Checks every credential of a scenario gets the answer the scenario is about (and warms the
/// cache where it should be warm). Returns the bodies to send.
fn prepare(
    sc: Scenario,
    cache: CacheKind,
    addr: SocketAddr,
    seed: &Seed,
) -> Result<(Vec<String>, Headers)> {
    let verify_bodies = |creds: &[String]| -> Vec<String> {
        creds
            .iter()
            .map(|c| json!({ "credential": c }).to_string())
            .collect()
    };
    let check_all = |creds: &[String],
                     headers: &[(&str, &str)],
                     valid: bool,
                     want_code: Option<&str>|
     -> Result<()> {
        for c in creds {
            let (v, _) = verify_once(addr, c, headers)?;
            ensure!(
                v["is_valid"].as_bool() == Some(valid),
                "{}: expected is_valid {valid}, got {v}",
                sc.id()
            );
            if let Some(code) = want_code {
                ensure!(
                    v["error_code"].as_str() == Some(code),
                    "{}: expected {code}, got {v}",
                    sc.id()
                );
            }
        }
        Ok(())
    };
    let no_cache = [("Cache-Control", "no-cache")];
    Ok(match sc {
        Scenario::VerifyIssuedHit | Scenario::VerifyImportedValid => {
            let creds = if sc == Scenario::VerifyIssuedHit {
                &seed.issued
            } else {
                &seed.imported
            };
            check_all(creds, &[], true, None)?;
            if cache == CacheKind::Memory {
                for c in creds {
                    let (_, status) = verify_once(addr, c, &[])?;
                    ensure!(
                        status == "HIT",
                        "{}: expected a cache HIT, got {status:?}",
                        sc.id()
                    );
                }
            }
            (verify_bodies(creds), Vec::new())
        }
        Scenario::VerifyNoCache => {
            check_all(&seed.issued, &no_cache, true, None)?;
            let (_, status) = verify_once(addr, &seed.issued[0], &no_cache)?;
            ensure!(status != "HIT", "no-cache verify answered from the cache");
            (
                verify_bodies(&seed.issued),
                vec![("Cache-Control".into(), "no-cache".into())],
            )
        }
        Scenario::VerifyImportedUnknown => {
            check_all(
                &seed.unknown,
                &[],
                false,
                Some("VERIFICATION_ERROR_NOT_FOUND"),
            )?;
            (verify_bodies(&seed.unknown), Vec::new())
        }
        Scenario::VerifyForged => {
            for c in &seed.forged {
                let (v, status) = verify_once(addr, c, &[])?;
                ensure!(
                    v["is_valid"].as_bool() == Some(false)
                        && v["error_message"]
                            .as_str()
                            .is_some_and(|m| m.contains("checksum"))
                        && status == "SKIP",
                    "forged key not rejected on its checksum: {v} (cache {status:?})"
                );
            }
            (verify_bodies(&seed.forged), Vec::new())
        }
        Scenario::VerifyJwt => {
            check_all(&seed.jwts, &[], true, None)?;
            (verify_bodies(&seed.jwts), Vec::new())
        }
        Scenario::DeriveJwt => {
            let bodies: Vec<String> = seed
                .issued
                .iter()
                .map(|c| json!({ "credential": c, "ttl": "1h" }).to_string())
                .collect();
            let r = http::request(addr, "POST", DERIVE, Some(&bodies[0]), &[])?;
            r.expect(200, "derive")?;
            (bodies, Vec::new())
        }
        Scenario::Issue => {
            let body = key_spec("bench-load").to_string();
            http::request(addr, "POST", ISSUED, Some(&body), &[])?.expect(201, "issue")?;
            (vec![body], Vec::new())
        }
        Scenario::BatchImport => {
            let keys: Vec<Value> = (0..BATCH)
                .map(|i| {
                    let mut s = key_spec("bulk");
                    s["raw_key"] = json!(format!("precheck-{i:05}-0123456789abcdef"));
                    s
                })
                .collect();
            let v = http::post(addr, BATCH_IMPORT, &json!({ "keys": keys }))?
                .expect(200, "batch import")?;
            ensure!(
                v["success_count"].as_u64() == Some(BATCH as u64),
                "batch import of {BATCH}: {}",
                v["failure_count"]
            );
            (Vec::new(), Vec::new())
        }
    })
}

/// Bench configuration: the quickstart's, with the log level and cache set by the harness.
const CONFIG: &str = r#"# written by `cargo xtask bench` (the quickstart configuration)
serve:
  http: { host: "127.0.0.1", port: 8080 }
  metrics: { host: "127.0.0.1", port: 4422 }
credentials:
  issuer: "http://localhost:8080"
  api_keys:
    default_ttl: "720h"
    prefix: { current: "talos" }
  derived_tokens:
    default_ttl: "1h"
    jwt:
      signing_keys:
        urls:
          - "base64://eyAgImtleXMiOiBbICAgIHsgICAgICAiYWxnIjogIkVkRFNBIiwgICAgICAiY3J2IjogIkVkMjU1MTkiLCAgICAgICJkIjogIjl3VTNfV3p0dmx3TXg0SGlfN2dsSVduY09XNlVIR2I5amxDdDZEZkVGa2MiLCAgICAgICJraWQiOiAiZG9ja2VyLWRldi0wMDEiLCAgICAgICJrdHkiOiAiT0tQIiwgICAgICAidXNlIjogInNpZyIsICAgICAgIngiOiAiNGtTQTdtNU5jYnFDUC1mZk9fNGhQM2tsNHB0NGctLTNRQ21zQmwzb05lVSIgICAgfSAgXX0="
    macaroon:
      prefix: { current: "mc" }
db:
  dsn: "sqlite://talos.db"
secrets:
  default: { current: "preview-default-secret-minimum-32-chars-long" }
  hmac: { current: "preview-hmac-secret-minimum-32-chars-long" }
  pagination: { current: "preview-pagination-secret-32-chars-min" }
cache: { type: "memory", ttl: "5m" }
multitenancy: { enabled: false }
log: { level: "info", format: "json" }
"#;

fn run_config(
    ctx: &Ctx,
    bin: &Path,
    backend: Backend,
    cache: CacheKind,
    scenarios: &[Scenario],
    smoke: bool,
    baseline: &Pair,
) -> Result<Vec<Run>> {
    let name = format!("{}-{}", backend.name(), cache.name());
    eprintln!(
        "xtask: talos-server on {} with cache {}",
        backend.name(),
        cache.name()
    );
    let db_name = format!("talos_bench_{}", cache.name());
    let dsn = match backend {
        Backend::Sqlite => {
            let file = ctx.work.join(format!("{name}.db"));
            let _ = std::fs::remove_file(&file);
            format!("sqlite://{}", file.display())
        }
        Backend::Postgres => {
            fresh_database(&db_name)?;
            format!("postgres://postgres@127.0.0.1:5432/{db_name}?sslmode=disable")
        }
    };
    let status = Command::new(bin)
        .args(["migrate", "up", "--database", &dsn])
        .stdout(Stdio::null())
        .status()
        .context("running talos-server migrate up")?;
    ensure!(status.success(), "talos-server migrate up failed for {dsn}");
    let config = ctx.work.join("config.yaml");
    std::fs::write(&config, CONFIG)?;
    let port = free_port()?;
    let mut metrics_port = free_port()?;
    while metrics_port == port {
        metrics_port = free_port()?;
    }
    let mut cmd = Command::new(bin);
    cmd.current_dir(&ctx.work)
        .args(["serve", "--config"])
        .arg(&config)
        .env("TALOS_DB_DSN", &dsn)
        .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
        .env("TALOS_SERVE_HTTP_PORT", port.to_string())
        .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
        .env("TALOS_SERVE_METRICS_PORT", metrics_port.to_string())
        .env("TALOS_SERVE_HTTP_WORKERS", ctx.workers.to_string())
        .env("TALOS_CACHE_TYPE", cache.name())
        .env("TALOS_LOG_LEVEL", &ctx.log_level);
    let server = Server::start(&name, cmd, port, &ctx.work.join(format!("{name}.log")))?;
    let seed = seed(server.addr, seed_count(smoke), &ctx.nonce)
        .with_context(|| format!("seeding keys on {name}"))?;
    let mut runs = Vec::new();
    for &sc in scenarios {
        let (bodies, headers) = prepare(sc, cache, server.addr, &seed)
            .with_context(|| format!("checking {} on {name}", sc.id()))?;
        let bodies = if sc == Scenario::BatchImport {
            Bodies::ImportBatch(BATCH)
        } else {
            let file = ctx.work.join(format!("{name}-{}.jsonl", sc.id()));
            std::fs::write(&file, bodies.join("\n") + "\n")?;
            Bodies::File(file)
        };
        let script = Script {
            path: sc.path().into(),
            headers,
            bodies,
        };
        let label = format!("{name}-{}", sc.id());
        let measured = measure(
            ctx,
            &server,
            &label,
            &script,
            sc.saturation_connections(ctx.connections),
            Some(baseline),
        )?;
        for m in measured {
            runs.push(Run {
                target: "talos".into(),
                backend: Some(backend),
                cache: Some(cache),
                scenario: sc.id().into(),
                title: sc.title(cache).into(),
                load_kind: m.kind,
                generator: m.generator,
                load: m.load,
                target_rps: m.target_rps,
                result: m.result,
                paired_baseline_rps: m.paired_baseline_rps,
                interference: m.interference,
            });
        }
    }
    server.stop();
    if backend == Backend::Postgres {
        let _ = drop_database(&db_name);
    }
    Ok(runs)
}

/// A server process (talos-server or the baseline) on 127.0.0.1.
struct Server {
    name: String,
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(name: &str, mut cmd: Command, port: u16, log: &Path) -> Result<Server> {
        // Inherited TALOS_* variables would override the harness's configuration.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TALOS_") && !cmd.get_envs().any(|(e, _)| e == k) {
                cmd.env_remove(&k);
            }
        }
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
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log: log.to_path_buf(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = http::request(self.addr, "GET", "/health/alive", None, &[])
                && r.status == 200
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "{} exited with {status} before answering; log:\n{}",
                    self.name,
                    tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{} did not answer on {}; log:\n{}",
            self.name,
            self.addr,
            tail(&self.log)
        )
    }

    fn stop(mut self) {
        self.shutdown();
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

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

const PG: [&str; 4] = ["-h", "127.0.0.1", "-U", "postgres"];

/// PostgreSQL on 127.0.0.1:5432 (started like `.ci/run` does when it is down); its version.
fn postgres_ready() -> Result<String> {
    let ready = || {
        Command::new("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready() {
        eprintln!("xtask: starting PostgreSQL");
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .context("PostgreSQL is not running and not installed (/etc/postgresql)")?;
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .status();
        for _ in 0..30 {
            if ready() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        ensure!(ready(), "PostgreSQL did not start on 127.0.0.1:5432");
    }
    let mut args = vec!["-tAc", "SHOW server_version"];
    args.extend(PG);
    Ok(sh("psql", &args).unwrap_or_default())
}

fn drop_database(name: &str) -> Result<()> {
    let mut args = PG.to_vec();
    args.extend(["--if-exists", name]);
    let status = Command::new("dropdb").args(&args).status()?;
    ensure!(status.success(), "dropdb {name} failed");
    Ok(())
}

fn fresh_database(name: &str) -> Result<()> {
    drop_database(name)?;
    let mut args = PG.to_vec();
    args.push(name);
    let status = Command::new("createdb").args(&args).status()?;
    ensure!(status.success(), "createdb {name} failed");
    Ok(())
}

fn run_pgbench(ctx: &Ctx, clients: usize) -> Result<Pgbench> {
    let db = "talos_bench_pgbench";
    fresh_database(db)?;
    let mut init = PG.to_vec();
    init.extend(["-i", "-q", db]);
    let out = Command::new("pgbench").args(&init).output()?;
    ensure!(
        out.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let threads = ctx.threads.min(clients).to_string();
    let clients_s = clients.to_string();
    let secs = ctx.seconds.to_string();
    let mut args = PG.to_vec();
    args.extend([
        "-S", "-n", "-c", &clients_s, "-j", &threads, "-T", &secs, db,
    ]);
    let out = Command::new("pgbench").args(&args).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "pgbench -S failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = drop_database(db);
    let number_after = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let tps = number_after("tps = ").context("pgbench printed no tps")?;
    let latency = number_after("latency average = ").unwrap_or(0.0);
    let mut command = String::from("pgbench");
    for a in &args {
        let _ = write!(command, " {a}");
    }
    Ok(Pgbench {
        clients,
        threads: ctx.threads.min(clients),
        seconds: ctx.seconds,
        tps,
        latency_avg_ms: latency,
        command,
    })
}

fn loadavg() -> String {
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
fn busy_processes() -> Vec<String> {
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
fn wait_quiet(max_s: u64) -> (u64, bool, Vec<String>) {
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

fn machine() -> Machine {
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

fn git_commit(root: &Path) -> String {
    let root = root.display().to_string();
    let commit = sh("git", &["-C", &root, "rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = sh("git", &["-C", &root, "status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit} (with uncommitted changes)")
    } else {
        commit
    }
}
