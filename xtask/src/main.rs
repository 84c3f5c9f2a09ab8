//! Project automation: `cargo xtask bench` (the HTTP load harness, issue 7) and the baseline
//! server it measures Talos against.

mod baseline;
mod bench;
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
        Cmd::BaselineServer { port, workers } => baseline::serve(port, workers),
    }
}
