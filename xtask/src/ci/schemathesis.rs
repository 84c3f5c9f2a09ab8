//! `cargo xtask schemathesis`: schemathesis (installed with pip into `target/venv`) against a live
//! `talos-server` on SQLite with the quickstart configuration and the committed
//! `docs/openapi.json`: no response may be a 5xx, and every response must match its schema and
//! a documented status code.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::proc::{Server, TmpDir, free_port_pair, tail};
use crate::workspace;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// talos-server binary (default: build it and use target/debug/talos-server).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Do not run `cargo build --bin talos-server` first.
    #[arg(long)]
    pub no_build: bool,
    /// Examples per operation.
    #[arg(long, default_value_t = 25)]
    pub max_examples: u32,
}

/// The virtualenv's schemathesis, created and installed on first use.
fn schemathesis() -> Result<PathBuf> {
    let venv = workspace::target_dir().join("venv");
    let bin = venv.join("bin").join("schemathesis");
    if !bin.exists() {
        eprintln!(
            "xtask schemathesis: installing schemathesis into {}",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        ensure!(ok, "python3 -m venv {} failed", venv.display());
        let ok = Command::new(venv.join("bin").join("pip"))
            .args(["install", "-q", "schemathesis"])
            .status()
            .is_ok_and(|s| s.success());
        ensure!(ok, "pip install schemathesis failed");
    }
    Ok(bin)
}

pub fn run(args: Args) -> Result<()> {
    let server = match args.server {
        Some(p) => p,
        None => {
            if !args.no_build {
                workspace::cargo_build(&["--bin", "talos-server"])?;
            }
            workspace::target_dir().join("debug/talos-server")
        }
    };
    let config = workspace::shared_dir()
        .join("conformance")
        .join("quickstart-config.yaml");
    ensure!(
        config.exists(),
        "{} not found (set TALOS_SHARED_DIR)",
        config.display()
    );
    let st = schemathesis()?;
    let work = TmpDir::new("schemathesis")?;
    let (port, metrics) = free_port_pair()?;
    let mut cmd = Command::new(&server);
    cmd.current_dir(&work.path)
        .args(["serve", "--config"])
        .arg(&config)
        .env(
            "TALOS_DB_DSN",
            format!("sqlite://{}", work.join("st.db").display()),
        )
        .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
        .env("TALOS_SERVE_HTTP_PORT", port.to_string())
        .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
        .env("TALOS_SERVE_METRICS_PORT", metrics.to_string())
        .env("TALOS_LOG_LEVEL", "warn");
    let log = work.join("server.log");
    let node = Server::start("talos-server", cmd, port, &log)?;
    let status = Command::new(st)
        .arg("run")
        .arg(workspace::root().join("docs").join("openapi.json"))
        .args(["--url", &format!("http://{}", node.addr)])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
        ])
        .args(["--max-examples", &args.max_examples.to_string()])
        .args(["--request-timeout", "10", "--no-color"])
        .status()
        .context("running schemathesis")?;
    if !status.success() {
        bail!("schemathesis failed; server log tail:\n{}", tail(&log, 30));
    }
    node.stop();
    Ok(())
}
