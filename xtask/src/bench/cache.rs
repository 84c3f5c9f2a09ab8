//! `cargo xtask bench-cache noop|memory|redis`: verify throughput of one release `talos-server`
//! on the shared PostgreSQL per cache backend (docs/benchmarks.md, "Cache and rate limits"):
//! one hot issued key (or, with `--forged`, that key with a bad checksum), `wrk -t1 -c32` on
//! `apiKeys:verify`. `--no-local` turns the Redis cache's
//! in-process layer off; `--limiter memory|redis` turns the rate limiter on and gives the key a
//! policy it never exhausts. Needs Redis on 127.0.0.1:6379 for the `redis` cache or limiter.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::json;

use super::baseline::VERIFY_PATH;
use super::scenario::{ISSUED, forge};
use super::wrk::{self, Bodies, Script};
use crate::proc::{Server, TmpDir, free_port_pair, loopback};
use crate::results::Load;
use crate::{http, pg, workspace};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The cache backend.
    #[arg(value_parser = ["noop", "memory", "redis"])]
    pub cache: String,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Turn the Redis cache's in-process layer (`cache.redis.local`) off.
    #[arg(long)]
    pub no_local: bool,
    /// Enable the rate limiter with this backend.
    #[arg(long, value_parser = ["memory", "redis"])]
    pub limiter: Option<String>,
    /// Verify a forged credential (the hot key with one checksum character changed) instead:
    /// refused on its checksum, before any cache or storage lookup.
    #[arg(long)]
    pub forged: bool,
    /// talos-server binary (default: build it and use target/release/talos-server).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Do not run `cargo build --release --bin talos-server` first.
    #[arg(long)]
    pub no_build: bool,
}

/// The server's configuration; the DSN, ports and log level come from the environment.
fn config(args: &Args, db: &str) -> String {
    format!(
        r#"credentials:
  issuer: "http://bench.test"
secrets:
  hmac:
    current: "bench-secret-0123456789abcdefghijklmnopqrstuv"
cache:
  type: {cache}
  redis:
    addrs: ["127.0.0.1:6379"]
    key_prefix: "talos-bench-{db}"
    local: {{ enabled: {local} }}
rate_limit:
  enabled: {limited}
  backend: {limiter}
log:
  level: warn
"#,
        cache = args.cache,
        local = !args.no_local,
        limited = args.limiter.is_some(),
        limiter = args.limiter.as_deref().unwrap_or("memory"),
    )
}

pub fn run(args: Args) -> Result<()> {
    let bin = match &args.server {
        Some(p) => p.clone(),
        None => {
            if !args.no_build {
                workspace::cargo_build(&["--release", "--bin", "talos-server"])?;
            }
            workspace::target_dir().join("release/talos-server")
        }
    };
    ensure!(bin.exists(), "{} is missing", bin.display());
    wrk::ensure_installed()?;
    pg::ensure_shared()?;
    let work = TmpDir::new("bench-cache")?;
    let db = format!("talos_bench_cache_{}", std::process::id());
    pg::fresh_database(pg::SHARED_PORT, &db)?;
    let result = measure(&args, &bin, &work, &db);
    let _ = pg::drop_database(pg::SHARED_PORT, &db);
    result
}

fn measure(args: &Args, bin: &Path, work: &TmpDir, db: &str) -> Result<()> {
    let dsn = pg::dsn(loopback(pg::SHARED_PORT), db);
    super::migrate(bin, &dsn)?;
    let cfg = work.join("talos.yaml");
    std::fs::write(&cfg, config(args, db))?;
    let (port, metrics) = free_port_pair()?;
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .env("TALOS_DB_DSN", &dsn)
        .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
        .env("TALOS_SERVE_HTTP_PORT", port.to_string())
        .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
        .env("TALOS_SERVE_METRICS_PORT", metrics.to_string());
    let server = Server::start("talos-server", cmd, port, &work.join("server.log"))?;

    let mut spec = json!({ "name": "b", "actor_id": "a", "ttl": "1h" });
    if args.limiter.is_some() {
        spec["rate_limit_policy"] = json!({ "quota": "1000000", "window": "1s" });
    }
    let issued = http::post(server.addr, ISSUED, &spec)?.expect(201, "issue")?;
    let secret = issued["secret"].as_str().context("no secret")?;
    // The second answer shows whether the cache serves it.
    let credential = if args.forged {
        forge(secret)
    } else {
        secret.to_string()
    };
    let body = json!({ "credential": credential }).to_string();
    for _ in 0..2 {
        let r = http::request(server.addr, "POST", VERIFY_PATH, Some(&body), &[])?;
        let v = r.expect(200, "verify")?;
        println!(
            "is_valid {}, Ory-Talos-Cache {:?}, RateLimit {:?}",
            v["is_valid"],
            r.header("ory-talos-cache").unwrap_or(""),
            r.header("ratelimit").unwrap_or("")
        );
    }
    let bodies = work.join("verify.jsonl");
    std::fs::write(&bodies, body + "\n")?;
    let script = Script {
        path: VERIFY_PATH.into(),
        headers: Vec::new(),
        bodies: Bodies::File(bodies),
    };
    let lua = work.join("verify.lua");
    std::fs::write(&lua, wrk::lua(&script, 0, "cache"))?;
    let load = Load {
        connections: 32,
        threads: 1,
        seconds: args.seconds,
        think_ms: 0,
    };
    let o = wrk::run(&format!("http://{}/", server.addr), &lua, load)?;
    println!(
        "cache {}{}{}{}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
        args.cache,
        if args.forged {
            ", forged credential"
        } else {
            ""
        },
        if args.no_local {
            " (no local layer)"
        } else {
            ""
        },
        args.limiter
            .as_deref()
            .map_or(String::new(), |l| format!(", limiter {l}")),
        o.rps,
        o.p50_ms,
        o.p99_ms,
        o.errors()
    );
    server.stop();
    Ok(())
}
