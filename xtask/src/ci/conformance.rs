//! `cargo xtask conformance`: the conformance suite shared with the specification
//! (`<shared>/conformance/run.sh`, HTTP and CLI checks) against the debug `talos-server` and
//! `talos`, first on SQLite, then on a freshly created PostgreSQL database on the shared server.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::{pg, proc, workspace};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Do not run `cargo build --bin talos-server --bin talos` first.
    #[arg(long)]
    pub no_build: bool,
}

/// The database the PostgreSQL leg recreates.
const DB: &str = "talos_conformance";

pub fn run(args: Args) -> Result<()> {
    let suite = workspace::shared_dir().join("conformance").join("run.sh");
    ensure!(
        suite.exists(),
        "conformance suite not found at {} (set TALOS_SHARED_DIR)",
        suite.display()
    );
    if !args.no_build {
        workspace::cargo_build(&["--bin", "talos-server", "--bin", "talos"])?;
    }
    let bins = workspace::target_dir().join("debug");
    eprintln!("xtask conformance: SQLite");
    suite_run(&suite, &bins, None)?;
    eprintln!("xtask conformance: PostgreSQL");
    pg::fresh_database(pg::SHARED_PORT, DB)?;
    let dsn = pg::dsn(proc::loopback(pg::SHARED_PORT), DB);
    suite_run(&suite, &bins, Some(&dsn))
}

fn suite_run(suite: &Path, bins: &Path, dsn: Option<&str>) -> Result<()> {
    let mut cmd = Command::new("bash");
    cmd.arg(suite)
        .arg(bins.join("talos-server"))
        .arg(bins.join("talos"));
    match dsn {
        Some(dsn) => cmd.env("TALOS_CONFORMANCE_DSN", dsn),
        None => cmd.env_remove("TALOS_CONFORMANCE_DSN"),
    };
    let status = cmd.status().context("running the conformance suite")?;
    ensure!(
        status.success(),
        "conformance failed on {}",
        if dsn.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    Ok(())
}
