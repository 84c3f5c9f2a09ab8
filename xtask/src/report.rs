//! The results as a markdown section of docs/benchmarks.md, and the goals of issue 7.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::results::{Backend, CacheKind, Goal, Pgbench, Results, Run};

pub const HEADING: &str = "## HTTP load (cargo xtask bench)";

/// Upstream Ory Talos's published figures (16-core laptop, PostgreSQL).
const UPSTREAM_PEAK_RPS: f64 = 16_766.0;
const UPSTREAM_P99_MS: f64 = 95.0;
const UPSTREAM_CORES: usize = 16;

fn find<'a>(
    runs: &'a [Run],
    backend: Option<Backend>,
    cache: Option<CacheKind>,
    scenario: &str,
    kind: &str,
) -> Option<&'a Run> {
    runs.iter().find(|r| {
        r.backend == backend && r.cache == cache && r.scenario == scenario && r.load_kind == kind
    })
}

fn baseline<'a>(runs: &'a [Run], kind: &str) -> Option<&'a Run> {
    runs.iter()
        .find(|r| r.target == "baseline" && r.load_kind == kind)
}

/// The baseline throughput a saturation run compares with: its paired run, else the first one.
fn base_for(runs: &[Run], r: &Run) -> Option<f64> {
    r.paired_baseline_rps
        .or_else(|| baseline(runs, "saturation").map(|b| b.result.rps))
        .filter(|b| *b > 0.0)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// 1234567 → "1,234,567" (rounded to an integer).
pub fn grouped(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A throughput goal: `run`'s saturation throughput at least `min` of its paired baseline's.
fn ratio_goal(runs: &[Run], run: Option<&Run>, goal: String, min: f64) -> Option<Goal> {
    let run = run?;
    let base = base_for(runs, run)?;
    let ratio = run.result.rps / base;
    Some(Goal {
        goal,
        target: format!("≥ {} of baseline (paired run)", pct(min)),
        measured: format!(
            "{} of {} req/s = {}",
            grouped(run.result.rps),
            grouped(base),
            pct(ratio)
        ),
        met: Some(ratio >= min),
    })
}

/// The goals of issue 7 that an HTTP run measures.
pub fn goals(runs: &[Run], pgbench: &[Pgbench], connections: usize) -> Vec<Goal> {
    let mut out = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let b = backend.name();
        let memory = |scenario: &str, kind: &str| {
            find(runs, Some(backend), Some(CacheKind::Memory), scenario, kind)
        };
        out.extend(ratio_goal(
            runs,
            memory("verify_issued", "saturation"),
            format!("verify, cache hit, throughput ({b})"),
            0.70,
        ));
        if let Some(half) = memory("verify_issued", "half") {
            out.push(Goal {
                goal: format!("verify, cache hit, p99 at half load ({b})"),
                target: "< 2 ms".into(),
                measured: format!(
                    "{} ms at {} req/s",
                    ms(half.result.p99_ms),
                    grouped(half.result.rps)
                ),
                met: Some(half.result.p99_ms < 2.0),
            });
        }
        out.extend(ratio_goal(
            runs,
            memory("verify_forged", "saturation"),
            format!("verify, forged credential, throughput ({b})"),
            0.80,
        ));
    }
    let pg_ceiling = pgbench
        .iter()
        .find(|p| p.clients == connections)
        .or(pgbench.first());
    let no_cache = find(
        runs,
        Some(Backend::Postgres),
        Some(CacheKind::Memory),
        "verify_no_cache",
        "saturation",
    );
    if let (Some(nc), Some(pg)) = (no_cache, pg_ceiling) {
        let ratio = nc.result.rps / pg.tps;
        out.push(Goal {
            goal: "verify, `no-cache`, PostgreSQL, throughput".into(),
            target: format!("≥ 60% of `pgbench -S` ({} clients)", pg.clients),
            measured: format!(
                "{} of {} = {}",
                grouped(nc.result.rps),
                grouped(pg.tps),
                pct(ratio)
            ),
            met: Some(ratio >= 0.60),
        });
    }
    if let Some(bi) = find(
        runs,
        Some(Backend::Postgres),
        Some(CacheKind::Memory),
        "batch_import_1000",
        "half",
    ) {
        out.push(Goal {
            goal: "batch import of 1000 keys, PostgreSQL, request latency".into(),
            target: "< 150 ms (p50 at half load)".into(),
            measured: format!(
                "p50 {} ms, p99 {} ms",
                ms(bi.result.p50_ms),
                ms(bi.result.p99_ms)
            ),
            met: Some(bi.result.p50_ms < 150.0),
        });
    }
    out
}

fn errors(r: &Run) -> String {
    let o = &r.result;
    if o.errors() == 0 {
        return "0".into();
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (o.connect_errors, "connect"),
        (o.read_errors, "read"),
        (o.write_errors, "write"),
        (o.status_errors, "HTTP ≥ 400"),
        (o.timeouts, "timeout"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}

/// The markdown section (heading included).
pub fn markdown(res: &Results) -> String {
    let mut s = String::new();
    let m = &res.machine;
    let st = &res.settings;
    let c = &res.conditions;
    let _ = writeln!(s, "{HEADING}\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench` ({} mode) on {}, commit {}; rerun the command rather than editing it. \
         Machine-readable figures: `target/bench/{}`.\n",
        res.mode,
        res.date,
        res.commit,
        if res.mode == "smoke" {
            "smoke.json"
        } else {
            "results.json"
        }
    );
    let _ = writeln!(s, "- **Command**: `{}`", res.command);
    let _ = writeln!(
        s,
        "- **Machine**: {} cores (`nproc`), {}, {} RAM, Linux {}. wrk and the server share those cores over loopback.",
        m.nproc, m.cpu_model, m.mem_total, m.kernel
    );
    let _ = writeln!(
        s,
        "- **Conditions**: load average {} before the runs ({}after waiting {} s for a quiet machine{}), {} after \
         (the harness's own load included).",
        c.loadavg_start,
        if c.quiet_at_start {
            "quiet, "
        } else {
            "**not quiet**, "
        },
        c.waited_for_quiet_s,
        if c.busy_at_start.is_empty() {
            String::new()
        } else {
            format!("; busy: {}", c.busy_at_start.join(" "))
        },
        c.loadavg_end
    );
    let disturbed: Vec<String> = res
        .runs
        .iter()
        .filter(|r| !r.interference.is_empty())
        .map(|r| format!("{}/{} ({})", label(r), r.scenario, r.load_kind))
        .collect();
    if !disturbed.is_empty() && disturbed.len() == res.runs.len() {
        let _ = writeln!(
            s,
            "- **Disturbed runs**: a rustc/cargo process was running around every run."
        );
    } else if !disturbed.is_empty() {
        let _ = writeln!(
            s,
            "- **Disturbed runs** (a rustc/cargo process was running around them): {}",
            disturbed.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "- **Settings**: {} `talos-server` and baseline, {} actix workers each, log level `{}`; {}, {} threads{}; \
         {} s per run; saturation at {} connections (batch import: {}); {} keys seeded per kind through the HTTP API{}.",
        st.binary,
        st.workers,
        st.log_level,
        st.wrk,
        st.threads,
        st.oha
            .as_deref()
            .map(|v| format!(", {v} for the half-load runs"))
            .unwrap_or_default(),
        st.seconds,
        st.connections,
        st.connections.min(4),
        st.seeded_keys,
        st.postgres
            .as_deref()
            .map(|v| format!("; PostgreSQL {v} on 127.0.0.1 (trust auth, pool of 16 connections)"))
            .unwrap_or_default()
    );
    s.push('\n');

    // Ceilings.
    let _ = writeln!(s, "### Ceilings\n");
    let _ = writeln!(
        s,
        "| ceiling | load | req/s (TPS) | p50 ms | p99 ms |\n|---|---|---:|---:|---:|"
    );
    for r in res.runs.iter().filter(|r| r.target == "baseline") {
        let _ = writeln!(
            s,
            "| actix-web baseline (parse body, fixed answer) | {} | {} | {} | {} |",
            load_text(r),
            grouped(r.result.rps),
            ms(r.result.p50_ms),
            ms(r.result.p99_ms)
        );
    }
    let mut paired: Vec<f64> = res
        .runs
        .iter()
        .filter_map(|r| r.paired_baseline_rps)
        .collect();
    paired.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (paired.first(), paired.last()) {
        let _ = writeln!(
            s,
            "| actix-web baseline, the {} paired runs (median, min–max) | saturation, {} connections | {} ({}–{}) | | |",
            paired.len(),
            res.settings.connections,
            grouped(paired[paired.len() / 2]),
            grouped(*lo),
            grouped(*hi)
        );
    }
    for p in &res.pgbench {
        let _ = writeln!(
            s,
            "| `pgbench -S` (select by primary key) | {} clients, {} threads | {} | avg {} | |",
            p.clients,
            p.threads,
            grouped(p.tps),
            ms(p.latency_avg_ms)
        );
    }
    s.push('\n');

    // Talos.
    let _ = writeln!(s, "### Talos\n");
    if res.mode == "full" {
        // Drawn by `crate::charts` into docs/bench/ from the same runs.
        let _ = writeln!(
            s,
            "![Throughput per scenario beside the paired baseline](bench/{})\n\n\
             ![Latency percentiles at half load](bench/{})\n",
            crate::charts::THROUGHPUT,
            crate::charts::LATENCY
        );
    }
    let _ = writeln!(
        s,
        "Saturation: fixed connections, no think time. Half load: half the saturation throughput (see Method). \
         \"× baseline\" is the saturation throughput over the baseline's in a run with the same load made right \
         after it (batch import: over the first baseline run).\n"
    );
    let _ = writeln!(
        s,
        "| backend | cache | scenario | req/s at saturation | × baseline | p50 / p99 ms at saturation | req/s at half load (target; connections) | p50 / p99 ms at half load | errors |\n\
         |---|---|---|---:|---:|---:|---:|---:|---|"
    );
    let talos: Vec<&Run> = res.runs.iter().filter(|r| r.target == "talos").collect();
    for sat in talos.iter().filter(|r| r.load_kind == "saturation") {
        let half = talos.iter().find(|r| {
            r.load_kind == "half"
                && r.backend == sat.backend
                && r.cache == sat.cache
                && r.scenario == sat.scenario
        });
        let ratio = base_for(&res.runs, sat)
            .map_or(String::new(), |b| format!("{:.2}", sat.result.rps / b));
        let (half_rps, half_lat) = match half {
            Some(h) => (
                format!(
                    "{} ({}; {} conn{})",
                    grouped(h.result.rps),
                    grouped(h.target_rps.unwrap_or(0.0)),
                    h.load.connections,
                    match h.load.think_ms {
                        0 => String::new(),
                        t => format!(", {t} ms apart"),
                    }
                ),
                format!("{} / {}", ms(h.result.p50_ms), ms(h.result.p99_ms)),
            ),
            None => ("–".into(), "–".into()),
        };
        let errs = match half {
            Some(h) if h.result.errors() > 0 => format!("{}; half: {}", errors(sat), errors(h)),
            _ => errors(sat),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} | {} |",
            sat.backend.map_or("", |b| b.name()),
            sat.cache.map_or("", |c| c.name()),
            sat.title,
            grouped(sat.result.rps),
            ratio,
            ms(sat.result.p50_ms),
            ms(sat.result.p99_ms),
            half_rps,
            half_lat,
            errs
        );
    }
    s.push('\n');

    // Goals.
    if !res.goals.is_empty() {
        let _ = writeln!(s, "### Goals (issue 7)\n");
        let _ = writeln!(s, "| goal | target | measured | met |\n|---|---|---|---|");
        for g in &res.goals {
            let met = match g.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                g.goal, g.target, g.measured, met
            );
        }
        let _ = writeln!(
            s,
            "\nThe in-process goal (verify on a cache hit ≤ 3× one HMAC-SHA256) is measured by the criterion \
             bench, see \"In-process verify\".\n"
        );
    }

    // Beside upstream.
    // Upstream's headline is verify: compare the cache-hit verify (or, without it, the fastest run).
    let pg_hit = |kind: &str| {
        find(
            &res.runs,
            Some(Backend::Postgres),
            Some(CacheKind::Memory),
            "verify_issued",
            kind,
        )
    };
    let peak = pg_hit("saturation").or_else(|| {
        talos
            .iter()
            .copied()
            .filter(|r| r.load_kind == "saturation" && r.backend == Some(Backend::Postgres))
            .max_by(|a, b| a.result.rps.total_cmp(&b.result.rps))
    });
    if let Some(peak) = peak {
        let _ = writeln!(s, "### Beside upstream Ory Talos\n");
        let _ = writeln!(
            s,
            "| | cores | req/s at saturation | req/s per core | verify p99 (cache hit) |\n|---|---:|---:|---:|---|"
        );
        let _ = writeln!(
            s,
            "| Ory Talos, published (16-core laptop, PostgreSQL) | {UPSTREAM_CORES} | {} | {} | {UPSTREAM_P99_MS:.0} ms |",
            grouped(UPSTREAM_PEAK_RPS),
            grouped(UPSTREAM_PEAK_RPS / UPSTREAM_CORES as f64)
        );
        let p99 = match pg_hit("saturation") {
            Some(sat) => format!(
                "{} ms at saturation{}",
                ms(sat.result.p99_ms),
                pg_hit("half").map_or(String::new(), |h| format!(
                    ", {} ms at half load",
                    ms(h.result.p99_ms)
                ))
            ),
            None => "–".into(),
        };
        let _ = writeln!(
            s,
            "| this Talos, PostgreSQL, {} | {} | {} | {} | {} |",
            peak.title,
            res.machine.nproc,
            grouped(peak.result.rps),
            grouped(peak.result.rps / res.machine.nproc.max(1) as f64),
            p99
        );
        let _ = writeln!(
            s,
            "\nUpstream's load generator and hardware differ (and its server had 16 cores to itself); per-core \
             figures are only indicative. Here the load generator takes part of the 2 cores.\n"
        );
    }

    let _ = writeln!(s, "### Method\n");
    let _ = writeln!(
        s,
        "- Every scenario is checked before it is loaded: valid keys verify as valid (and, with the memory \
         cache, a second verify answers `Ory-Talos-Cache: HIT`), forged keys fail on their checksum without a \
         cache lookup (`SKIP`), unknown imported keys answer `NOT_FOUND`, `no-cache` never hits, derive, issue \
         and a batch of 1000 succeed. wrk then reports transport errors and answers with a status ≥ 400; \
         every run above should show 0.\n\
         - Bodies rotate over the seeded keys (verify: {n} issued keys, {n} imported keys of which half came \
         through `POST /importedApiKeys` and half through `:batchImport`, {n} JWTs derived from the issued \
         keys; forged = an issued key with one checksum character changed; unknown = never imported). \
         Issue and batch import write new rows (each batch request imports 1000 fresh keys), so they run last.\n\
         - Half load: {half_tool} Batch import (each request must carry 1000 new keys){wrk_also} uses wrk \
         instead: a closed loop with fewer connections, sized from a {cal} s one-connection run and corrected \
         once, or one connection waiting between requests (wrk's `delay()`) when one connection is already \
         faster than the target; those latencies are not corrected for coordinated omission.\n\
         - Why paired runs: on this virtual machine the same run varies by up to ±30% from one minute to the \
         next (the baseline has measured anywhere from 150,000 to 325,000 req/s while compute benchmarks stayed \
         within 2%); client and server threads share 2 vCPUs, and where the host schedules them changes the cost \
         of every loopback wake-up. A ratio of two runs seconds apart is much steadier than either figure.\n\
         - With `noop` only the scenarios that read storage run; the others do not touch the cache.\n\
         - Each configuration gets a fresh database: a new SQLite file, or `createdb` on PostgreSQL, then \
         `talos-server migrate up`. `pgbench -i` (scale 1) builds its own database; `pgbench -S -n` runs \
         with the HTTP connection count and with Talos's pool size (16).",
        n = st.seeded_keys,
        cal = st.calibration_seconds.max(1),
        half_tool = match &st.oha {
            Some(v) => format!(
                "{v} sends requests at a fixed rate, half the saturation throughput (`-q RATE \
                 --latency-correction`, {} connections), and measures each latency from the moment its \
                 request was due, as wrk2 does (wrk 4 cannot pace requests, and wrk2 is not packaged). oha \
                 costs more CPU per request than wrk, and it takes it from the same 2 cores.",
                st.connections
            ),
            None => "run without oha (`--smoke` or `--no-oha`).".to_string(),
        },
        wrk_also = if st.oha.is_some() {
            ""
        } else {
            ", and every other scenario here,"
        }
    );
    s
}

/// A run's `backend/cache`, or its target (the baseline).
pub(crate) fn label(r: &Run) -> String {
    match (r.backend, r.cache) {
        (Some(b), Some(c)) => format!("{}/{}", b.name(), c.name()),
        _ => r.target.clone(),
    }
}

fn load_text(r: &Run) -> String {
    if r.load_kind == "saturation" {
        format!("saturation, {} connections", r.load.connections)
    } else {
        match r.load.think_ms {
            0 => format!("half load, {} connections", r.load.connections),
            t => format!(
                "half load, {} connections, {t} ms between requests",
                r.load.connections
            ),
        }
    }
}

/// The hand-written subsection of the generated section, kept across runs.
pub const ANALYSIS: &str = "### Analysis";

/// Replaces (or appends) the `HEADING` section of `doc`, leaving every other section as it is and
/// keeping the section's hand-written `### Analysis` subsection.
pub fn write_section(doc: &Path, section: &str) -> Result<()> {
    let text = std::fs::read_to_string(doc).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = match analysis(&text) {
        Some(kept) => format!("{}\n\n{kept}", section.trim_end()),
        None => section.to_string(),
    };
    let new = replace_section(&text, HEADING, &section);
    std::fs::write(doc, new)?;
    Ok(())
}

/// The `### Analysis` subsection of the `HEADING` section of `text`, up to the next heading of
/// level 2 or 3.
fn analysis(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim_end() == HEADING)?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |i| start + 1 + i);
    let a = lines[start..end]
        .iter()
        .position(|l| l.trim_end() == ANALYSIS)
        .map(|i| start + i)?;
    let b = lines[a + 1..end]
        .iter()
        .position(|l| l.starts_with("### "))
        .map_or(end, |i| a + 1 + i);
    Some(lines[a..b].join("\n").trim_end().to_string() + "\n")
}

/// `text` with the section under `heading` (up to the next `## ` heading) replaced by `section`.
pub fn replace_section(text: &str, heading: &str, section: &str) -> String {
    let section = section.trim_end().to_string() + "\n";
    let lines: Vec<&str> = text.lines().collect();
    match lines.iter().position(|l| l.trim_end() == heading) {
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|l| l.starts_with("## "))
                .map_or(lines.len(), |i| start + 1 + i);
            let mut out = lines[..start].join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&section);
            if end < lines.len() {
                out.push('\n');
                out.push_str(&lines[end..].join("\n"));
                out.push('\n');
            }
            out
        }
        None => {
            let mut out = text.trim_end().to_string();
            out.push_str("\n\n");
            out.push_str(&section);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_its_section() {
        let doc = "# B\n\nintro\n\n## Other\n\nkeep\n\n## HTTP load (cargo xtask bench)\n\nold\n\n### sub\n\nold\n\n## After\n\nkeep too\n";
        let out = replace_section(doc, HEADING, "## HTTP load (cargo xtask bench)\n\nnew\n");
        assert_eq!(
            out,
            "# B\n\nintro\n\n## Other\n\nkeep\n\n## HTTP load (cargo xtask bench)\n\nnew\n\n## After\n\nkeep too\n"
        );
        let appended = replace_section("# B\n", HEADING, "## HTTP load (cargo xtask bench)\n\nx");
        assert_eq!(appended, "# B\n\n## HTTP load (cargo xtask bench)\n\nx\n");
    }

    #[test]
    fn keeps_the_analysis() {
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = dir.join("benchmarks.md");
        std::fs::write(
            &doc,
            "# B\n\n## HTTP load (cargo xtask bench)\n\nold\n\n### Analysis\n\nwhy\n\n### Method\n\nold\n\n## After\n\nx\n",
        )
        .unwrap();
        write_section(
            &doc,
            "## HTTP load (cargo xtask bench)\n\nnew\n\n### Method\n\nnew\n",
        )
        .unwrap();
        let out = std::fs::read_to_string(&doc).unwrap();
        assert_eq!(
            out,
            "# B\n\n## HTTP load (cargo xtask bench)\n\nnew\n\n### Method\n\nnew\n\n### Analysis\n\nwhy\n\n## After\n\nx\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(16766.0), "16,766");
        assert_eq!(grouped(999.4), "999");
        assert_eq!(grouped(1_234_567.0), "1,234,567");
    }
}
