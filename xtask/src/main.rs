//! Project automation: `cargo xtask bench` (the HTTP load harness, issue 7) and the baseline
//! server it measures Talos against; `cargo xtask chaos` and `cargo xtask soak` (the
//! fault-injection suite and the soak run of issue 11, see docs/reliability.md); `cargo xtask
//! docs-check` (every shell block of README.md and docs/ run against the real binaries).

mod baseline;
mod bench;
mod chaos;
mod docs_check;
mod http;
mod oha;
mod report;
mod wrk;

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
    /// Fault injection against live talos-server nodes on the harness's own PostgreSQL and
    /// Redis (see docs/reliability.md).
    Chaos(chaos::Args),
    /// Run every shell block of README.md and docs/**/*.md against the real binaries.
    DocsCheck(docs_check::Args),
    /// Half load for N minutes, sampling RSS, open files and p99 every 10 s.
    Soak(chaos::soak::Args),
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
        Cmd::Chaos(args) => chaos::run(args),
        Cmd::DocsCheck(args) => docs_check::run(args),
        Cmd::Soak(args) => chaos::soak::run(args),
        Cmd::BaselineServer { port, workers } => baseline::serve(port, workers),
    }
}
