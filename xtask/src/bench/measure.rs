//! Measuring one target: a saturation run with wrk, the paired baseline run right after it, and a
//! half-load run (oha at a fixed rate, or wrk sized by calibration); and the `pgbench -S` ceiling.

use std::fmt::Write as _;

use anyhow::{Context, Result, ensure};

use super::Ctx;
use super::machine::busy_processes;
use super::oha;
use super::wrk::{self, Bodies, Script};
use crate::pg;
use crate::proc::Server;
use crate::results::{Load, Outcome, Pgbench, Run};

/// A measured run, not yet labelled with what it measured (target, backend, cache, scenario,
/// title): its caller knows that.
fn unlabelled(
    load_kind: &'static str,
    generator: &'static str,
    load: Load,
    target_rps: Option<f64>,
    result: Outcome,
    paired_baseline_rps: Option<f64>,
    interference: Vec<String>,
) -> Run {
    Run {
        target: String::new(),
        backend: None,
        cache: None,
        scenario: String::new(),
        title: String::new(),
        load_kind: load_kind.into(),
        generator: generator.into(),
        load,
        target_rps,
        result,
        paired_baseline_rps,
        interference,
    }
}

/// The baseline server and what it is sent.
pub struct Pair {
    pub server: Server,
    pub script: Script,
}

/// Saturation (wrk), then half of the throughput it reached (oha at a fixed rate; wrk with fewer
/// connections in smoke mode, without oha, and for batch import whose bodies must all differ).
pub fn measure(
    ctx: &Ctx,
    server: &Server,
    label: &str,
    script: &Script,
    connections: usize,
    baseline: Option<&Pair>,
) -> Result<Vec<Run>> {
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
    let mut out = vec![unlabelled(
        "saturation",
        "wrk",
        sat_load,
        None,
        sat.clone(),
        paired_baseline_rps,
        seen,
    )];
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
    out.push(unlabelled(
        "half",
        generator,
        load,
        Some(target),
        half,
        None,
        seen_half,
    ));
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

/// `pgbench -S` (select by primary key) on the shared PostgreSQL: the database's own ceiling.
pub fn run_pgbench(ctx: &Ctx, clients: usize) -> Result<Pgbench> {
    let db = "talos_bench_pgbench";
    let port = pg::SHARED_PORT;
    pg::fresh_database(port, db)?;
    let out = pg::client("pgbench", port)
        .args(["-i", "-q", db])
        .output()?;
    ensure!(
        out.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let threads = ctx.threads.min(clients);
    let mut cmd = pg::client("pgbench", port);
    cmd.args(["-S", "-n", "-c", &clients.to_string()]).args([
        "-j",
        &threads.to_string(),
        "-T",
        &ctx.seconds.to_string(),
        db,
    ]);
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "pgbench -S failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = pg::drop_database(port, db);
    let number_after = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let tps = number_after("tps = ").context("pgbench printed no tps")?;
    let latency = number_after("latency average = ").unwrap_or(0.0);
    let mut command = String::from("pgbench");
    for a in cmd.get_args() {
        let _ = write!(command, " {}", a.to_string_lossy());
    }
    Ok(Pgbench {
        clients,
        threads,
        seconds: ctx.seconds,
        tps,
        latency_avg_ms: latency,
        command,
    })
}
