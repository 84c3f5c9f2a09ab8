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
//!
//! Modules: `scenario` (what is sent and the seeded keys), `measure` (saturation, paired
//! baseline, half load, pgbench), `machine` (the machine and how busy it is), `wrk` and `oha`
//! (the load generators), `baseline` (the actix-web ceiling), `cache` (`cargo xtask
//! bench-cache`, verify throughput per cache backend). The figures are `crate::results`; the
//! markdown is `crate::report`'s.

pub mod baseline;
pub mod cache;
mod machine;
mod measure;
mod oha;
mod scale;
mod scenario;
mod wrk;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use serde_json::json;

use self::baseline::VERIFY_PATH;
use self::measure::{Pair, measure};
use self::scenario::{ALL, BATCH, Scenario};
use self::wrk::{Bodies, Script};
use crate::proc::{Server, free_port, free_port_pair, sh};
use crate::results::{Backend, CacheKind, Conditions, Results, Run, Settings};
use crate::{http, pg, report, workspace};

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
    /// Instead of the scenarios: seed this many keys (1 in 10 issued, the rest imported) per backend
    /// and measure uncached verify, batch import, listing, database size and cache memory,
    /// beside the same at 1,000 keys ("A million keys" in docs/benchmarks.md).
    #[arg(long)]
    pub keys: Option<usize>,
}

/// Settings every measurement of one bench run shares.
pub struct Ctx {
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

/// The binaries a run drives.
struct Bins {
    profile: &'static str,
    talos: PathBuf,
    baseline: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let root = workspace::root();
    let bench_dir = workspace::target_dir().join("bench");
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
    let bins = binaries(&args)?;
    let postgres = if backends.contains(&Backend::Postgres) {
        Some(pg::ensure_shared()?)
    } else {
        None
    };

    // A quiet machine before measuring.
    let quiet_wait = args.quiet_wait.unwrap_or(if args.smoke { 0 } else { 900 });
    let (waited, quiet, busy) = machine::wait_quiet(quiet_wait);
    let loadavg_start = machine::loadavg();
    eprintln!(
        "xtask: load average {loadavg_start} (waited {waited}s, quiet: {quiet}{})",
        if busy.is_empty() {
            String::new()
        } else {
            format!(", busy: {}", busy.join(" "))
        }
    );

    if let Some(keys) = args.keys {
        return run_scale(&args, &ctx, &bins, &backends, keys, &loadavg_start, started);
    }

    let mut runs = Vec::new();
    let mut pgbench = Vec::new();
    // The framework ceiling. The baseline server stays up: every Talos saturation run is followed
    // by a baseline run with the same load, so each ratio compares runs a few seconds apart.
    let baseline = start_baseline(&ctx, &bins.baseline, &mut runs)?;
    if !args.smoke && backends.contains(&Backend::Postgres) {
        for clients in BTreeSet::from([ctx.connections, 16]) {
            eprintln!("xtask: pgbench -S with {clients} clients");
            pgbench.push(measure::run_pgbench(&ctx, clients)?);
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
                &ctx,
                &bins.talos,
                backend,
                cache,
                &scenarios,
                args.smoke,
                &baseline,
            )?);
        }
    }
    baseline.server.stop();

    let results = Results {
        mode: if args.smoke { "smoke" } else { "full" },
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        commit: machine::git_commit(&root),
        command: std::iter::once("cargo xtask".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        machine: machine::machine(),
        settings: Settings {
            seconds,
            calibration_seconds: ctx.calibration,
            connections: ctx.connections,
            threads: ctx.threads,
            workers: ctx.workers,
            log_level: ctx.log_level.clone(),
            binary: bins.profile.into(),
            wrk: wrk_version,
            oha: oha_version,
            postgres,
            seeded_keys: scenario::seed_count(args.smoke),
        },
        conditions: Conditions {
            loadavg_start,
            loadavg_end: machine::loadavg(),
            waited_for_quiet_s: waited,
            quiet_at_start: quiet,
            busy_at_start: busy,
        },
        goals: if args.smoke {
            Vec::new()
        } else {
            report::goals(&runs, &pgbench, ctx.connections)
        },
        runs,
        pgbench,
    };
    write_results(&args, &root, &bench_dir, &results)?;

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

/// `--keys N`: the scale measurements (`scale`), their JSON and their section of the doc.
fn run_scale(
    args: &Args,
    ctx: &Ctx,
    bins: &Bins,
    backends: &[Backend],
    keys: usize,
    loadavg_start: &str,
    started: Instant,
) -> Result<()> {
    ensure!(keys >= 2000, "--keys must be at least 2000");
    let root = workspace::root();
    let rows = scale::run(ctx, &bins.talos, backends, keys)?;
    let m = machine::machine();
    let header = format!(
        "Written by `cargo xtask bench --keys {keys}` on {}, commit {}; rerun the command rather than \
         editing it. Machine-readable figures: `target/bench/scale.json`.\n\n\
         - **Machine**: {} cores, {}, load average {loadavg_start} before, {} after. The load \
         generators and the seeding clients share those cores over loopback.\n\
         - **Settings**: {} `talos-server`, {} actix workers, no cache (`noop`) except for the memory \
         figure (`memory`); keys seeded through the API: nine in ten imported (batches of 1000), \
         one in ten issued, over 1000 actors, from 4 client threads; verify samples 1000 keys of each kind \
         across the whole range (wrk, {} connections, {} s, then oha at half that rate); \
         PostgreSQL on 127.0.0.1, pool of 16 connections, autovacuum as configured (statistics are \
         whatever PostgreSQL gathered by itself).",
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        machine::git_commit(&root),
        m.nproc,
        m.cpu_model,
        machine::loadavg(),
        bins.profile,
        ctx.workers,
        ctx.connections,
        ctx.seconds,
    );
    let section = scale::markdown(&rows, &header);
    println!("{section}");
    let json_path = workspace::target_dir().join("bench").join("scale.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&rows)? + "\n")?;
    eprintln!("xtask: wrote {}", json_path.display());
    if !args.no_doc && !args.smoke {
        let doc = root.join("docs").join("benchmarks.md");
        let text = std::fs::read_to_string(&doc).unwrap_or_default();
        std::fs::write(
            &doc,
            report::replace_section(&text, scale::HEADING, &section),
        )?;
        eprintln!("xtask: updated {}", doc.display());
    }
    eprintln!(
        "xtask: bench --keys {keys} in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds (unless `--no-build`) and finds talos-server and the baseline: the debug talos-server
/// CI has built and this very xtask for `--smoke`, release builds of both otherwise.
fn binaries(args: &Args) -> Result<Bins> {
    let profile = if args.smoke { "debug" } else { "release" };
    if !args.no_build {
        eprintln!("xtask: building ({profile})");
        if args.smoke {
            workspace::cargo_build(&["--bin", "talos-server"])?;
        } else {
            workspace::cargo_build(&["--release", "--bin", "talos-server", "--bin", "xtask"])?;
        }
    }
    let target = workspace::target_dir();
    let talos = target.join(profile).join("talos-server");
    ensure!(
        talos.exists(),
        "{} is missing (build it or drop --no-build)",
        talos.display()
    );
    let baseline = if args.smoke {
        std::env::current_exe()?
    } else {
        target.join("release").join("xtask")
    };
    ensure!(baseline.exists(), "{} is missing", baseline.display());
    Ok(Bins {
        profile,
        talos,
        baseline,
    })
}

/// Starts the baseline server, measures it (runs appended to `runs`) and keeps it up for the
/// paired runs.
fn start_baseline(ctx: &Ctx, bin: &Path, runs: &mut Vec<Run>) -> Result<Pair> {
    eprintln!("xtask: baseline (actix-web, fixed answer)");
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args(["baseline-server", "--port", &port.to_string(), "--workers"])
        .arg(ctx.workers.to_string());
    let server = Server::start("baseline", cmd, port, &ctx.work.join("baseline.log"))?;
    let body = json!({ "credential": "talos_v1_baseline" }).to_string();
    let r = http::request(server.addr, "POST", VERIFY_PATH, Some(&body), &[])?;
    r.expect(200, "baseline verify")?;
    let bodies = ctx.work.join("baseline.jsonl");
    std::fs::write(&bodies, format!("{body}\n"))?;
    let script = Script {
        path: VERIFY_PATH.into(),
        headers: Vec::new(),
        bodies: Bodies::File(bodies),
    };
    for m in measure(ctx, &server, "baseline", &script, ctx.connections, None)? {
        runs.push(labelled(
            m,
            "baseline",
            None,
            "verify",
            "actix-web baseline (fixed JSON answer)",
        ));
    }
    Ok(Pair { server, script })
}

/// A measured run labelled with what it measured.
fn labelled(
    m: Run,
    target: &str,
    config: Option<(Backend, CacheKind)>,
    scenario: &str,
    title: &str,
) -> Run {
    Run {
        target: target.into(),
        backend: config.map(|c| c.0),
        cache: config.map(|c| c.1),
        scenario: scenario.into(),
        title: title.into(),
        ..m
    }
}

/// `results.json` (or `smoke.json`), the markdown on stdout, and docs/benchmarks.md for a full
/// run.
fn write_results(args: &Args, root: &Path, bench_dir: &Path, results: &Results) -> Result<()> {
    let json_path = bench_dir.join(if args.smoke {
        "smoke.json"
    } else {
        "results.json"
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(results)? + "\n")?;
    let table = report::markdown(results);
    println!("{table}");
    eprintln!("xtask: wrote {}", json_path.display());
    if !args.smoke && !args.no_doc {
        let doc = root.join("docs").join("benchmarks.md");
        report::write_section(&doc, &table)?;
        eprintln!("xtask: updated {}", doc.display());
        crate::charts::write(&results.runs)?;
    }
    Ok(())
}

/// Bench configuration: the quickstart's, with the log level and cache set by the harness.
/// `JWKS_URL` stands for its JWKS (`talos_test_support::QUICKSTART_JWKS`, from `testdata/`).
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
          - "JWKS_URL"
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

/// One talos-server (`backend`, `cache`) on a fresh database: seeded, each scenario checked and
/// measured.
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
            pg::fresh_database(pg::SHARED_PORT, &db_name)?;
            pg::dsn(crate::proc::loopback(pg::SHARED_PORT), &db_name)
        }
    };
    migrate(bin, &dsn)?;
    let server = start_talos(ctx, bin, &name, &dsn, cache.name(), &[])?;
    let seed = scenario::seed(server.addr, scenario::seed_count(smoke), &ctx.nonce)
        .with_context(|| format!("seeding keys on {name}"))?;
    let mut runs = Vec::new();
    for &sc in scenarios {
        let (bodies, headers) = scenario::prepare(sc, cache, server.addr, &seed)
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
            runs.push(labelled(
                m,
                "talos",
                Some((backend, cache)),
                sc.id(),
                sc.title(cache),
            ));
        }
    }
    server.stop();
    if backend == Backend::Postgres {
        let _ = pg::drop_database(pg::SHARED_PORT, &db_name);
    }
    Ok(runs)
}

/// A release `talos-server` named `name` (its log in the work directory) with the bench
/// configuration on `dsn`, cache `cache`, and `env` on top.
fn start_talos(
    ctx: &Ctx,
    bin: &Path,
    name: &str,
    dsn: &str,
    cache: &str,
    env: &[(&str, &str)],
) -> Result<Server> {
    let config = ctx.work.join("config.yaml");
    std::fs::write(
        &config,
        CONFIG.replace("JWKS_URL", talos_test_support::QUICKSTART_JWKS),
    )?;
    let (port, metrics_port) = free_port_pair()?;
    let mut cmd = Command::new(bin);
    cmd.current_dir(&ctx.work)
        .args(["serve", "--config"])
        .arg(&config)
        .env("TALOS_DB_DSN", dsn)
        .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
        .env("TALOS_SERVE_HTTP_PORT", port.to_string())
        .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
        .env("TALOS_SERVE_METRICS_PORT", metrics_port.to_string())
        .env("TALOS_SERVE_HTTP_WORKERS", ctx.workers.to_string())
        .env("TALOS_CACHE_TYPE", cache)
        .env("TALOS_LOG_LEVEL", &ctx.log_level)
        .envs(env.iter().copied());
    Server::start(name, cmd, port, &ctx.work.join(format!("{name}.log")))
}

/// `talos-server migrate up` against `dsn`.
pub fn migrate(bin: &Path, dsn: &str) -> Result<()> {
    let status = Command::new(bin)
        .args(["migrate", "up", "--database", dsn])
        .env_remove("TALOS_DB_DSN")
        .stdout(Stdio::null())
        .status()
        .context("running talos-server migrate up")?;
    ensure!(status.success(), "talos-server migrate up failed for {dsn}");
    Ok(())
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
