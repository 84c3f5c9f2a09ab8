//! Project automation, one subcommand per job:
//! - measuring: `bench` (the HTTP load harness of issue 7, docs/benchmarks.md) with its
//!   `baseline-server` and `bench-charts` (redraws its SVG charts), `bench-cache` (verify
//!   throughput per cache backend);
//! - resilience: `chaos` and `soak` (fault injection and the soak run of issue 11,
//!   docs/reliability.md);
//! - CI (`.ci/run` is the list of steps): `tidy` (the rules of docs/ARCHITECTURE.md a program can
//!   check), `services` (packages, PostgreSQL and Redis), `conformance`, `schemathesis`,
//!   `docs-check` (every shell block of README.md and docs/ against the real binaries),
//!   `gateway-proxy` (gateway verify behind nginx and Caddy).
//!
//! Shared pieces: `workspace` (paths, cargo builds), `proc` (ports, temporary directories, server
//! processes), `pg` (PostgreSQL), `http` (a minimal blocking client), `results` and `report`
//! (the bench's figures and their markdown).

mod bench;
mod chaos;
mod charts;
mod ci;
mod docs_check;
mod http;
mod pg;
mod proc;
mod report;
mod results;
mod tidy;
mod workspace;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Talos project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load-test talos-server over loopback with wrk (see docs/benchmarks.md).
    Bench(bench::Args),
    /// Verify throughput of one release talos-server on PostgreSQL for one cache backend.
    BenchCache(bench::cache::Args),
    /// Fault injection against live talos-server nodes on the harness's own PostgreSQL and
    /// Redis (see docs/reliability.md).
    Chaos(chaos::Args),
    /// Run every shell block of README.md and docs/**/*.md against the real binaries.
    DocsCheck(docs_check::Args),
    /// Half load for N minutes, sampling RSS, open files and p99 every 10 s.
    Soak(chaos::soak::Args),
    /// Check the rules a program can check: module docs, crate layering, file sizes, wire
    /// strings only in talos-api.
    Tidy(tidy::Args),
    /// Install the Debian packages CI needs and start PostgreSQL (5432) and Redis (6379).
    Services,
    /// The shared conformance suite against the debug binaries, on SQLite and on PostgreSQL.
    Conformance(ci::conformance::Args),
    /// Schemathesis against a live talos-server with the committed docs/openapi.json.
    Schemathesis(ci::schemathesis::Args),
    /// Gateway verify behind real nginx (`auth_request`) and Caddy (`forward_auth`), configured
    /// as docs/integrations/ says.
    GatewayProxy(ci::gateway_proxy::Args),
    /// Redraw docs/bench/*.svg from target/bench/results.json (the last full `bench` run).
    BenchCharts,
    /// The framework ceiling: a minimal actix-web server answering a verify-shaped JSON POST
    /// with a fixed JSON body (no crypto, no storage).
    BaselineServer {
        #[arg(long)]
        port: u16,
        /// actix workers (0 = actix's default, one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Bench(args) => bench::run(args),
        Cmd::BenchCache(args) => bench::cache::run(args),
        Cmd::BenchCharts => charts::redraw(),
        Cmd::Chaos(args) => chaos::run(args),
        Cmd::DocsCheck(args) => docs_check::run(args),
        Cmd::Soak(args) => chaos::soak::run(args),
        Cmd::Tidy(args) => tidy::run(args),
        Cmd::Services => ci::services::run(),
        Cmd::Conformance(args) => ci::conformance::run(args),
        Cmd::Schemathesis(args) => ci::schemathesis::run(args),
        Cmd::GatewayProxy(args) => ci::gateway_proxy::run(args),
        Cmd::BaselineServer { port, workers } => bench::baseline::serve(port, workers),
    }
}
