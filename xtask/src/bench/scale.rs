//! `cargo xtask bench --keys N`: Talos with N keys (half issued, half imported, 1000 actors) on
//! each backend, beside the same measurements at 1,000 keys in the same run (issue 18).
//!
//! Per backend and size, on a fresh database and a release `talos-server` without a cache: the
//! keys are seeded through the API (nine in ten imported, in batches of 1000; one in ten issued,
//! one request each, which is the slow part; both from several client threads), which gives the batch import rate as the table
//! grows; then uncached verify of imported and issued keys picked across the whole range (wrk at
//! saturation, oha at half of it), listing one actor's keys, walking the unfiltered listing page by
//! page (deep pagination), and the database's size. At the large size a second server with the
//! memory cache verifies up to 100,000 distinct keys to measure the cache's memory (RSS before and
//! after). Writes `target/bench/scale.json` and the "A million keys" section of
//! `docs/benchmarks.md`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use serde_json::{Value, json};

use super::measure::measure;
use super::wrk::{Bodies, Script};
use super::{Ctx, migrate, start_talos};
use crate::http;
use crate::pg;
use crate::proc::Server;
use crate::report::grouped;
use crate::results::{Backend, Outcome};

const ISSUED: &str = "/v2alpha1/admin/issuedApiKeys";
const BATCH_IMPORT: &str = "/v2alpha1/admin/importedApiKeys:batchImport";
const VERIFY: &str = "/v2alpha1/admin/apiKeys:verify";
/// Actors the keys are spread over (key i belongs to `actor-{i % ACTORS}`).
const ACTORS: usize = 1000;
/// Client threads seeding keys.
const SEED_THREADS: usize = 4;
/// Keys sampled across the range for the verify runs, per kind.
const SAMPLE: usize = 1000;
/// Distinct keys verified through the memory cache to measure its memory.
const CACHED: usize = 100_000;

/// The figures of one backend at one size.
#[derive(Debug, Serialize)]
pub struct ScaleRow {
    pub backend: Backend,
    pub keys: usize,
    /// Batch import while seeding: keys per second over all batches.
    pub import_keys_per_s: f64,
    /// Batch import of 1000 keys: median and worst request time over the last tenth of the
    /// batches (the table at its full size).
    pub import_batch_p50_ms: f64,
    pub import_batch_max_ms: f64,
    /// Batches answered 503 (no write lock within `db.statement_timeout`) and sent again.
    pub import_busy_retries: usize,
    /// Issue while seeding: keys per second.
    pub issue_keys_per_s: f64,
    /// Uncached verify of imported keys: saturation, then half load.
    pub verify_imported: Vec<Outcome>,
    /// Uncached verify of issued keys: saturation, then half load.
    pub verify_issued: Vec<Outcome>,
    /// One actor's issued keys (page size 100): median and p99 request time over 50 requests.
    pub list_actor_p50_ms: f64,
    pub list_actor_p99_ms: f64,
    /// The unfiltered listing walked with page size 1000: pages, keys reached, median and last
    /// page time.
    pub pages_walked: usize,
    pub depth_reached: usize,
    pub page_p50_ms: f64,
    pub last_page_ms: f64,
    /// Database size on disk (PostgreSQL: `pg_database_size`; SQLite: the file and its WAL).
    pub db_bytes: u64,
    /// Server memory (RSS) per 100,000 cached entries, at the large size only.
    pub cache_bytes_per_100k: Option<f64>,
    /// Cached entries the memory figure was measured with.
    pub cached_entries: Option<usize>,
}

/// Imported and issued keys of a size: nine in ten imported (the verify path's index lookups do
/// not care which kind fills the table, and issuing one key per request would take most of the
/// run).
fn split(keys: usize) -> (usize, usize) {
    let issued = keys / 10;
    (keys - issued, issued)
}

fn raw_key(nonce: &str, i: usize) -> String {
    format!("scale-{nonce}-{i:08}-5f3c9a0e7b214d6a")
}

fn spec(i: usize) -> Value {
    json!({ "name": "scale", "actor_id": format!("actor-{}", i % ACTORS), "scopes": ["read"] })
}

/// Runs `work(i)` for i in 0..n on `SEED_THREADS` threads.
fn parallel(n: usize, work: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..SEED_THREADS)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        work(i)?;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a seeding thread panicked"))??;
        }
        Ok(())
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The server's resident memory in bytes.
fn rss(pid: u32) -> Result<u64> {
    let (kib, _) = crate::proc::rss_fds(pid);
    ensure!(kib > 0, "no resident memory figure for process {pid}");
    Ok(kib * 1024)
}

struct Seeded {
    /// Issued secrets sampled across the range.
    issued_sample: Vec<String>,
    import_keys_per_s: f64,
    import_batch_p50_ms: f64,
    import_batch_max_ms: f64,
    import_busy_retries: usize,
    issue_keys_per_s: f64,
}

fn seed(addr: SocketAddr, keys: usize, nonce: &str) -> Result<Seeded> {
    let (imported, issued) = split(keys);
    let batches = imported.div_ceil(1000);
    let times = std::sync::Mutex::new(vec![0.0; batches]);
    let busy = AtomicUsize::new(0);
    let started = Instant::now();
    parallel(batches, |b| {
        let keys: Vec<Value> = (b * 1000..((b + 1) * 1000).min(imported))
            .map(|i| {
                let mut s = spec(i);
                s["raw_key"] = json!(raw_key(nonce, i));
                s
            })
            .collect();
        let body = json!({ "keys": keys });
        let t = Instant::now();
        let mut r = http::post(addr, BATCH_IMPORT, &body)?;
        // 503: the write lock was not had within `db.statement_timeout` (SQLite's one writer
        // behind the other clients' batches). The batch rolled back whole; send it again.
        for _ in 0..10 {
            if r.status != 503 {
                break;
            }
            busy.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(200));
            r = http::post(addr, BATCH_IMPORT, &body)?;
        }
        let v = r.expect(200, "batch import")?;
        ensure!(
            v["success_count"].as_u64() == Some(keys.len() as u64),
            "batch import: {v}"
        );
        times.lock().unwrap()[b] = ms(t);
        Ok(())
    })?;
    let import_s = started.elapsed().as_secs_f64();
    let times = times.into_inner().unwrap();
    let last = sorted(times[batches - batches.div_ceil(10)..].to_vec());

    let every = (issued / SAMPLE).max(1);
    let sample = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    parallel(issued, |i| {
        let mut s = spec(i);
        s["ttl"] = json!("720h");
        let v = http::post(addr, ISSUED, &s)?.expect(201, "issue")?;
        if i % every == 0 {
            let secret = v["secret"].as_str().context("no secret")?;
            sample.lock().unwrap().push(secret.to_string());
        }
        Ok(())
    })?;
    let issue_s = started.elapsed().as_secs_f64();
    Ok(Seeded {
        issued_sample: sample.into_inner().unwrap(),
        import_keys_per_s: imported as f64 / import_s,
        import_batch_p50_ms: percentile(&last, 0.5),
        import_batch_max_ms: last.last().copied().unwrap_or(0.0),
        import_busy_retries: busy.into_inner(),
        issue_keys_per_s: issued as f64 / issue_s,
    })
}

/// A talos-server on `dsn` with `cache` (`noop` or `memory`), its memory cache large enough for
/// the memory figure.
fn start(ctx: &Ctx, bin: &Path, name: &str, dsn: &str, cache: &str) -> Result<Server> {
    start_talos(
        ctx,
        bin,
        name,
        dsn,
        cache,
        &[("TALOS_CACHE_MEMORY_MAX_SIZE", "2GiB")],
    )
}

/// The verify bodies of `credentials`, written for wrk and oha.
fn verify_script(ctx: &Ctx, label: &str, credentials: &[String]) -> Result<Script> {
    let file = ctx.work.join(format!("{label}.jsonl"));
    let lines: Vec<String> = credentials
        .iter()
        .map(|c| json!({ "credential": c }).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n")?;
    Ok(Script {
        path: VERIFY.into(),
        headers: Vec::new(),
        bodies: Bodies::File(file),
    })
}

/// Checks that every credential verifies, then measures uncached verify.
fn verify_runs(
    ctx: &Ctx,
    server: &Server,
    label: &str,
    credentials: &[String],
) -> Result<Vec<Outcome>> {
    for c in credentials.iter().step_by(50) {
        let v =
            http::post(server.addr, VERIFY, &json!({ "credential": c }))?.expect(200, "verify")?;
        ensure!(v["is_valid"] == true, "{label}: {c} does not verify: {v}");
    }
    let script = verify_script(ctx, label, credentials)?;
    Ok(measure(ctx, server, label, &script, ctx.connections, None)?
        .into_iter()
        .map(|r| r.result)
        .collect())
}

/// One actor's issued keys, 50 times (actors that have some of the `issued` keys): median and
/// p99 ms.
fn list_actor(addr: SocketAddr, issued: usize) -> Result<(f64, f64)> {
    let mut t = Vec::new();
    let actors = ACTORS.min(issued).max(1);
    for i in 0..50 {
        let path = format!("{ISSUED}?actor_id=actor-{}&page_size=100", (i * 7) % actors);
        let start = Instant::now();
        let v = http::request(addr, "GET", &path, None, &[])?.expect(200, "list one actor")?;
        t.push(ms(start));
        ensure!(
            v["issued_api_keys"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "no keys for an actor: {v}"
        );
    }
    let t = sorted(t);
    Ok((percentile(&t, 0.5), percentile(&t, 0.99)))
}

/// Walks the unfiltered issued listing (page size 1000, at most 300 pages).
fn walk(addr: SocketAddr) -> Result<(usize, usize, f64, f64)> {
    let (mut token, mut depth, mut times) = (String::new(), 0, Vec::new());
    for _ in 0..300 {
        let path = if token.is_empty() {
            format!("{ISSUED}?page_size=1000")
        } else {
            format!("{ISSUED}?page_size=1000&page_token={token}")
        };
        let start = Instant::now();
        let v = http::request(addr, "GET", &path, None, &[])?.expect(200, "list a page")?;
        times.push(ms(start));
        depth += v["issued_api_keys"].as_array().map_or(0, Vec::len);
        token = v["next_page_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if token.is_empty() {
            break;
        }
    }
    let last = times.last().copied().unwrap_or(0.0);
    let pages = times.len();
    Ok((pages, depth, percentile(&sorted(times), 0.5), last))
}

fn db_bytes(backend: Backend, dsn_file: &Path, db: &str) -> Result<u64> {
    match backend {
        Backend::Sqlite => Ok(["", "-wal", "-shm"]
            .iter()
            .filter_map(|s| {
                std::fs::metadata(format!("{}{s}", dsn_file.display()))
                    .ok()
                    .map(|m| m.len())
            })
            .sum()),
        Backend::Postgres => {
            let out = pg::psql_command(
                pg::SHARED_PORT,
                db,
                &format!("SELECT pg_database_size('{db}')"),
            )
            .output()?;
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .context("pg_database_size")
        }
    }
}

/// RSS growth per 100,000 entries after verifying `n` distinct imported keys through a memory
/// cache (each verified twice: the second must be a hit, or the figure would not be the cache's).
fn cache_memory(server: &Server, nonce: &str, n: usize) -> Result<f64> {
    let pid = server.pid().context("the server's pid")?;
    let warm = http::post(
        server.addr,
        VERIFY,
        &json!({ "credential": raw_key(nonce, 0) }),
    )?;
    warm.expect(200, "verify")?;
    let before = rss(pid)?;
    parallel(n, |i| {
        let body = json!({ "credential": raw_key(nonce, i) });
        let v = http::post(server.addr, VERIFY, &body)?.expect(200, "verify")?;
        ensure!(
            v["is_valid"] == true,
            "imported key {i} does not verify: {v}"
        );
        Ok(())
    })?;
    let after = rss(pid)?;
    let mut hits = 0;
    for i in (0..n).step_by((n / 100).max(1)) {
        let body = json!({ "credential": raw_key(nonce, i) }).to_string();
        let r = http::request(server.addr, "POST", VERIFY, Some(&body), &[])?;
        hits += usize::from(r.header("ory-talos-cache") == Some("HIT"));
    }
    ensure!(
        hits >= 95,
        "only {hits} of 100 sampled keys were cache hits: the cache did not keep them"
    );
    Ok(after.saturating_sub(before) as f64 * 100_000.0 / n as f64)
}

/// One backend at one size.
fn one(ctx: &Ctx, bin: &Path, backend: Backend, keys: usize, memory: bool) -> Result<ScaleRow> {
    let name = format!("scale-{}-{keys}", backend.name());
    let db = format!("talos_scale_{keys}");
    let file = ctx.work.join(format!("{name}.db"));
    let dsn = match backend {
        Backend::Sqlite => {
            let _ = std::fs::remove_file(&file);
            format!("sqlite://{}", file.display())
        }
        Backend::Postgres => {
            pg::fresh_database(pg::SHARED_PORT, &db)?;
            pg::dsn(crate::proc::loopback(pg::SHARED_PORT), &db)
        }
    };
    migrate(bin, &dsn)?;
    let server = start(ctx, bin, &name, &dsn, "noop")?;
    eprintln!("xtask: {name}: seeding {keys} keys");
    let nonce = format!("{}{keys}", ctx.nonce);
    let seeded = seed(server.addr, keys, &nonce).with_context(|| format!("seeding {name}"))?;
    eprintln!(
        "xtask: {name}: batch import {:.0} keys/s (last batches p50 {:.1} ms), issue {:.0} keys/s",
        seeded.import_keys_per_s, seeded.import_batch_p50_ms, seeded.issue_keys_per_s
    );
    let (imported, _) = split(keys);
    let step = (imported / SAMPLE).max(1);
    let imported_sample: Vec<String> = (0..imported)
        .step_by(step)
        .map(|i| raw_key(&nonce, i))
        .collect();
    let verify_imported = verify_runs(
        ctx,
        &server,
        &format!("{name}-verify-imported"),
        &imported_sample,
    )?;
    let verify_issued = verify_runs(
        ctx,
        &server,
        &format!("{name}-verify-issued"),
        &seeded.issued_sample,
    )?;
    let (list_actor_p50_ms, list_actor_p99_ms) = list_actor(server.addr, split(keys).1)?;
    let (pages_walked, depth_reached, page_p50_ms, last_page_ms) = walk(server.addr)?;
    server.stop();
    let db_bytes = db_bytes(backend, &file, &db)?;
    let (cache_bytes_per_100k, cached_entries) = if memory {
        let n = CACHED.min(imported);
        let server = start(ctx, bin, &format!("{name}-memory"), &dsn, "memory")?;
        let per = cache_memory(&server, &nonce, n)?;
        server.stop();
        eprintln!(
            "xtask: {name}: {:.1} MiB per 100,000 cached entries",
            per / (1 << 20) as f64
        );
        (Some(per), Some(n))
    } else {
        (None, None)
    };
    if backend == Backend::Postgres {
        let _ = pg::drop_database(pg::SHARED_PORT, &db);
    }
    Ok(ScaleRow {
        backend,
        keys,
        import_keys_per_s: seeded.import_keys_per_s,
        import_batch_p50_ms: seeded.import_batch_p50_ms,
        import_batch_max_ms: seeded.import_batch_max_ms,
        import_busy_retries: seeded.import_busy_retries,
        issue_keys_per_s: seeded.issue_keys_per_s,
        verify_imported,
        verify_issued,
        list_actor_p50_ms,
        list_actor_p99_ms,
        pages_walked,
        depth_reached,
        page_p50_ms,
        last_page_ms,
        db_bytes,
        cache_bytes_per_100k,
        cached_entries,
    })
}

/// Every backend at 1,000 keys and at `keys`.
pub fn run(ctx: &Ctx, bin: &Path, backends: &[Backend], keys: usize) -> Result<Vec<ScaleRow>> {
    let mut rows = Vec::new();
    for &backend in backends {
        for (n, memory) in [(1000, false), (keys, true)] {
            rows.push(one(ctx, bin, backend, n, memory)?);
        }
    }
    Ok(rows)
}

fn cell_verify(o: &[Outcome]) -> String {
    match o {
        [sat, half, ..] => format!(
            "{:.0} req/s, p99 {:.2} ms; half load p99 {:.2} ms",
            sat.rps, sat.p99_ms, half.p99_ms
        ),
        [sat] => format!("{:.0} req/s, p99 {:.2} ms", sat.rps, sat.p99_ms),
        [] => "–".into(),
    }
}

/// The markdown section.
pub fn markdown(rows: &[ScaleRow], header: &str) -> String {
    let mut out = format!("{HEADING}\n\n{header}\n\n| | ");
    let cols: Vec<String> = rows
        .iter()
        .map(|r| format!("{} · {} keys", r.backend.name(), grouped(r.keys as f64)))
        .collect();
    out.push_str(&cols.join(" | "));
    out.push_str(" |\n|---|");
    out.push_str(&"---|".repeat(rows.len()));
    out.push('\n');
    let line = |out: &mut String, what: &str, f: &dyn Fn(&ScaleRow) -> String| {
        out.push_str(&format!("| {what} | "));
        out.push_str(&rows.iter().map(f).collect::<Vec<_>>().join(" | "));
        out.push_str(" |\n");
    };
    line(&mut out, "uncached verify, imported key", &|r| {
        cell_verify(&r.verify_imported)
    });
    line(&mut out, "uncached verify, issued key", &|r| {
        cell_verify(&r.verify_issued)
    });
    line(&mut out, "batch import while seeding (4 clients)", &|r| {
        format!("{} keys/s", grouped(r.import_keys_per_s))
    });
    line(
        &mut out,
        "batch import of 1000, last tenth: p50 / max",
        &|r| {
            format!(
                "{:.0} / {:.0} ms",
                r.import_batch_p50_ms, r.import_batch_max_ms
            )
        },
    );
    line(
        &mut out,
        "batches answered 503 (no write lock within 5 s) and resent",
        &|r| r.import_busy_retries.to_string(),
    );
    line(&mut out, "issue while seeding (4 clients)", &|r| {
        format!("{} keys/s", grouped(r.issue_keys_per_s))
    });
    line(
        &mut out,
        "one actor's keys (page of 100): p50 / p99",
        &|r| format!("{:.1} / {:.1} ms", r.list_actor_p50_ms, r.list_actor_p99_ms),
    );
    line(
        &mut out,
        "listing walked, pages of 1000: p50 / last page",
        &|r| {
            format!(
                "{:.0} / {:.0} ms ({} pages, {} keys deep)",
                r.page_p50_ms,
                r.last_page_ms,
                r.pages_walked,
                grouped(r.depth_reached as f64)
            )
        },
    );
    line(&mut out, "database size", &|r| {
        format!("{:.1} MiB", r.db_bytes as f64 / (1 << 20) as f64)
    });
    line(&mut out, "database size per million keys", &|r| {
        if r.keys >= 100_000 {
            format!(
                "{:.0} MiB",
                r.db_bytes as f64 / (1 << 20) as f64 * 1e6 / r.keys as f64
            )
        } else {
            "– (too small to scale up)".into()
        }
    });
    line(
        &mut out,
        "memory cache: RSS per 100,000 entries",
        &|r| match (r.cache_bytes_per_100k, r.cached_entries) {
            (Some(b), Some(n)) => format!(
                "{:.1} MiB (over {} entries)",
                b / (1 << 20) as f64,
                grouped(n as f64)
            ),
            _ => "–".into(),
        },
    );
    out
}

/// The heading of the section in docs/benchmarks.md.
pub const HEADING: &str = "## A million keys (cargo xtask bench --keys)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_values() {
        let v = sorted(vec![3.0, 1.0, 2.0, 4.0, 5.0]);
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.99), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
