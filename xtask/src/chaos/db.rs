//! Storage faults: PostgreSQL stopped (a) and stalled (b), `kill -9` during a batch import (f),
//! SQLite on a full or read-only disk (g).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use talos_test_support::StallProxy;

use super::client::{Answer, Api, BATCH_IMPORT, Tally};
use super::env::migrate;
use super::{BOUND, Ctx, Report, recover};
use crate::pg::Cluster;
use crate::proc::TmpDir;

/// The credentials every storage scenario probes.
pub struct Keys {
    /// Verified twice before the fault: served from the node's cache.
    pub cached: String,
    /// Verified with `Cache-Control: no-cache`: always a storage read.
    pub uncached: String,
    /// Revoked before the fault.
    pub revoked: String,
    /// Never existed (imported-key format: a hash lookup).
    pub unknown: String,
    pub actor: String,
}

pub async fn seed_keys(ctx: &Ctx, api: &Api) -> Result<Keys> {
    let actor = ctx.tag("actor");
    let (_, cached) = api.issue(&actor).await?;
    api.verify(&cached).await;
    let (_, uncached) = api.issue(&actor).await?;
    let (rid, revoked) = api.issue(&actor).await?;
    api.verify(&revoked).await;
    api.revoke(&rid).await?;
    let t = api.verify(&revoked).await;
    ensure!(
        matches!(&t.answer, Answer::Invalid(c) if c.ends_with("REVOKED")),
        "revoked key answered {}",
        t.answer.label()
    );
    let t = api.verify(&cached).await;
    ensure!(
        t.answer == Answer::Valid,
        "seeded key answered {}",
        t.answer.label()
    );
    Ok(Keys {
        cached,
        uncached,
        revoked,
        unknown: format!("{}-unknown-0123456789abcdef", ctx.tag("u")),
        actor,
    })
}

pub type Tallies = BTreeMap<String, Tally>;

/// One round of probes, all at once: verifies of each key, an issue and `/health/ready`.
async fn round(api: &Api, k: &Keys, t: &mut Tallies, phase: &str) {
    let (a, b, c, d, e, f) = tokio::join!(
        api.verify(&k.cached),
        api.verify_no_cache(&k.uncached),
        api.verify(&k.revoked),
        api.verify(&k.unknown),
        api.issue_timed(&k.actor),
        api.ready(),
    );
    for (name, x) in [
        ("verify cached", a),
        ("verify uncached (no-cache)", b),
        ("verify revoked", c),
        ("verify unknown", d),
        ("issue", e),
        ("GET /health/ready", f),
    ] {
        t.entry(format!("{phase}: {name}")).or_default().add(&x);
    }
}

/// Probes for `window` (rounds 200 ms apart; a round that hangs runs to the client timeout).
async fn probe_for(api: &Api, k: &Keys, t: &mut Tallies, phase: &str, window: Duration) {
    let start = Instant::now();
    while start.elapsed() < window {
        round(api, k, t, phase).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn get<'a>(t: &'a Tallies, key: &str) -> &'a Tally {
    static EMPTY: std::sync::LazyLock<Tally> = std::sync::LazyLock::new(Tally::default);
    t.get(key).unwrap_or(&EMPTY)
}

/// The invariant for every phase of `t`, and one row per probe.
fn invariant_and_rows(rep: &mut Report, t: &Tallies) {
    let mut revoked = Tally::default();
    let mut unknown = Tally::default();
    for (k, v) in t {
        if k.ends_with("verify revoked") {
            revoked.merge(v);
        }
        if k.ends_with("verify unknown") {
            unknown.merge(v);
        }
        rep.row(k, v);
    }
    rep.never_valid("revoked key", &revoked);
    rep.never_valid("unknown key", &unknown);
}

/// Storage recovered: an uncached verify is valid and an issue succeeds.
async fn storage_back(api: &Api, k: &Keys) -> bool {
    api.verify_no_cache(&k.uncached).await.answer == Answer::Valid
        && api.issue_timed(&k.actor).await.answer.is_http(201)
}

fn all_status(t: &Tally, status: u16) -> bool {
    let want = format!("http {status}");
    t.count() > 0 && t.answers.keys().all(|k| k.starts_with(&want))
}

pub async fn pg_stopped(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let mut pg = Cluster::start().await?;
    let dsn = pg.dsn_via(pg.addr(), "talos");
    migrate(&ctx.bin, &dsn).await?;
    let node = ctx.node(ctx.spec("a", &dsn, "memory")).await?;
    let api = Api::new(node.addr, Duration::from_secs(30), false)?;
    let keys = seed_keys(ctx, &api).await?;
    let mut t = Tallies::new();
    pg.stop("fast").await?;
    let window = Duration::from_secs(if ctx.short { 3 } else { 6 });
    probe_for(&api, &keys, &mut t, "down", window).await;
    pg.start_again().await?;
    let rec = recover(Duration::from_secs(60), async || {
        storage_back(&api, &keys).await
    })
    .await;
    rep.recovery_ms = rec.map(|d| d.as_millis() as u64);
    for _ in 0..3 {
        round(&api, &keys, &mut t, "after").await;
    }
    invariant_and_rows(rep, &t);
    let issue = get(&t, "down: issue");
    rep.check(
        "issue fails fast with 503 while PostgreSQL is down",
        all_status(issue, 503) && issue.max <= BOUND,
        format!("{} (max {} ms)", issue.summary(), issue.max.as_millis()),
    );
    let ready = get(&t, "down: GET /health/ready");
    rep.check(
        "/health/ready answers 503 while PostgreSQL is down",
        all_status(ready, 503),
        ready.summary(),
    );
    let uncached = get(&t, "down: verify uncached (no-cache)");
    rep.bounded("uncached verify while down", uncached, BOUND);
    rep.check(
        "recovers without a restart within 30 s",
        rec.is_some_and(|d| d < Duration::from_secs(30)),
        rec.map_or("no recovery within 60 s".into(), |d| {
            format!("{} ms after pg_ctl start returned", d.as_millis())
        }),
    );
    Ok(())
}

pub async fn pg_stalled(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let pg = Cluster::start().await?;
    let proxy = StallProxy::start(pg.addr())
        .await
        .context("starting the stall proxy")?;
    migrate(&ctx.bin, &pg.dsn_via(pg.addr(), "talos")).await?;
    let node = ctx
        .node(ctx.spec("b", &pg.dsn_via(proxy.addr, "talos"), "memory"))
        .await?;
    let api = Api::new(node.addr, Duration::from_secs(30), false)?;
    let keys = seed_keys(ctx, &api).await?;
    let window = Duration::from_secs(if ctx.short { 5 } else { 10 });
    let mut t = Tallies::new();

    // 1. Every byte to and from PostgreSQL held: connections stay open and never answer.
    proxy.stall();
    probe_for(&api, &keys, &mut t, "proxy stall", window).await;
    proxy.resume();
    let rec1 = recover(Duration::from_secs(60), async || {
        storage_back(&api, &keys).await
    })
    .await;

    // 2. A session holding ACCESS EXCLUSIVE on api_keys: every read and write of it waits.
    let lock = pg
        .hold_lock("talos", "api_keys", Duration::from_secs(300))
        .await?;
    probe_for(&api, &keys, &mut t, "table lock", window).await;
    pg.release_lock(lock).await?;
    let rec2 = recover(Duration::from_secs(60), async || {
        storage_back(&api, &keys).await
    })
    .await;
    invariant_and_rows(rep, &t);
    for phase in ["proxy stall", "table lock"] {
        for probe in ["verify uncached (no-cache)", "issue", "GET /health/ready"] {
            let x = get(&t, &format!("{phase}: {probe}")).clone();
            rep.bounded(&format!("{phase}: {probe}"), &x, BOUND);
        }
        let ready = get(&t, &format!("{phase}: GET /health/ready"));
        rep.check(
            &format!("{phase}: /health/ready goes 503"),
            ready.answers.keys().any(|k| k.starts_with("http 503")),
            ready.summary(),
        );
    }
    for (what, rec) in [("proxy stall", rec1), ("table lock", rec2)] {
        rep.check(
            &format!("{what}: recovers without a restart within 30 s"),
            rec.is_some_and(|d| d < Duration::from_secs(30)),
            rec.map_or("no recovery within 60 s".into(), |d| {
                format!("{} ms after the fault ended", d.as_millis())
            }),
        );
    }
    rep.recovery_ms = rec1
        .zip(rec2)
        .map(|(a, b)| a.max(b).as_millis() as u64)
        .or(rec1.or(rec2).map(|d| d.as_millis() as u64));
    rep.note(format!(
        "the stall proxy accepted {} connections",
        proxy.accepted()
    ));
    Ok(())
}

fn batch_body(tag: &str) -> Value {
    let keys: Vec<Value> = (0..1000)
        .map(|i| {
            json!({
                "name": "chaos-batch",
                "actor_id": tag,
                "scopes": ["read"],
                "raw_key": format!("{tag}-{i:05}-0123456789abcdef"),
            })
        })
        .collect();
    json!({ "keys": keys })
}

pub async fn kill_batch(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let pg = Cluster::start().await?;
    let dsn = pg.dsn_via(pg.addr(), "talos");
    migrate(&ctx.bin, &dsn).await?;
    let count_pg = async |tag: &str| -> Result<u64> {
        let out = pg
            .psql(
                "talos",
                &format!("SELECT count(*) FROM api_keys WHERE actor_id = '{tag}'"),
            )
            .await?;
        Ok(out.parse()?)
    };
    trials(ctx, rep, "postgres", &dsn, count_pg).await?;

    let file = ctx.work.join("f-sqlite.db");
    let dsn = format!("sqlite://{}", file.display());
    migrate(&ctx.bin, &dsn).await?;
    let count_sqlite = async |tag: &str| -> Result<u64> {
        let sql = format!("SELECT count(*) FROM api_keys WHERE actor_id = '{tag}'");
        Ok(sqlite3(&file, &sql).await?.parse()?)
    };
    trials(ctx, rep, "sqlite", &dsn, count_sqlite).await?;
    let text = sqlite3(&file, "PRAGMA integrity_check")
        .await
        .unwrap_or_else(|e| format!("{e:#}"));
    rep.check(
        "sqlite: integrity_check after the kills",
        text == "ok",
        text,
    );
    Ok(())
}

/// One statement through the `sqlite3` shell; its trimmed output.
async fn sqlite3(file: &Path, sql: &str) -> Result<String> {
    let out = tokio::process::Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .await
        .context("running sqlite3")?;
    ensure!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn trials(
    ctx: &Ctx,
    rep: &mut Report,
    backend: &str,
    dsn: &str,
    count: impl AsyncFn(&str) -> Result<u64>,
) -> Result<()> {
    let mut node = ctx
        .node(ctx.spec(&format!("f-{backend}"), dsn, "noop"))
        .await?;
    let api = Api::new(node.addr, Duration::from_secs(60), true)?;
    // Calibrate: how long one batch takes here, to kill at fractions of it.
    let tag = ctx.tag("batch-cal");
    let t = api
        .call(
            reqwest::Method::POST,
            BATCH_IMPORT,
            Some(&batch_body(&tag)),
            false,
        )
        .await;
    ensure!(
        t.answer.is_http(200) && t.body["success_count"] == json!(1000),
        "{backend}: calibration batch: {} {}",
        t.answer.label(),
        t.body["failure_count"]
    );
    let full = t.latency;
    let n = count(&tag).await?;
    rep.check(
        &format!("{backend}: a completed batch stores 1000 rows"),
        n == 1000,
        format!("{n} rows, {} ms", full.as_millis()),
    );
    let fractions: &[f64] = if ctx.short { &[0.5] } else { &[0.2, 0.5, 0.8] };
    let mut tally = Tally::default();
    for &f in fractions {
        let tag = ctx.tag("batch");
        let body = batch_body(&tag);
        let a = api.clone();
        let req = tokio::spawn(async move {
            a.call(reqwest::Method::POST, BATCH_IMPORT, Some(&body), false)
                .await
        });
        tokio::time::sleep(full.mul_f64(f)).await;
        node.kill9().await;
        let answer = req.await?;
        tally.add(&answer);
        let n = count(&tag).await?;
        rep.check(
            &format!(
                "{backend}: kill -9 at {:.0}% ({} ms): all or none",
                f * 100.0,
                full.mul_f64(f).as_millis()
            ),
            n == 0 || n == 1000,
            format!(
                "{n} of 1000 rows present; client saw {}",
                answer.answer.label()
            ),
        );
        node.restart(&ctx.work.path).await?;
    }
    rep.row(&format!("{backend}: batch answers when killed"), &tally);
    Ok(())
}

pub async fn sqlite_disk(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let mut dir = TmpDir::new("chaos-g")?;
    let mnt = match dir.mount_tmpfs("disk", "4M") {
        Ok(m) => m,
        Err(e) => {
            rep.skipped = Some(format!("{e:#}; cannot simulate a full disk here"));
            return Ok(());
        }
    };
    let db = mnt.join("talos.db");
    let dsn = format!("sqlite://{}", db.display());
    migrate(&ctx.bin, &dsn).await?;
    let mut node = ctx.node(ctx.spec("g", &dsn, "noop")).await?;
    let api = Api::new(node.addr, Duration::from_secs(30), false)?;
    let actor = ctx.tag("g");
    let (_, key) = api.issue(&actor).await?;
    let mut t = Tallies::new();

    // Full disk: fill the tmpfs.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler)?;
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    disk_probes(&api, &key, &actor, &mut t, "disk full").await;
    std::fs::remove_file(&filler)?;
    let rec_full = recover(Duration::from_secs(30), async || {
        api.issue_timed(&actor).await.answer.is_http(201)
    })
    .await;
    let up_after_full = node.is_running();

    // Read-only filesystem. Linux refuses to remount read-only under a process holding files
    // open for writing, so the node is stopped, the filesystem remounted read-only, and a node
    // started on it.
    node.signal("TERM");
    if node.wait_exit(Duration::from_secs(15)).await.is_none() {
        node.kill9().await;
    }
    let ro = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mnt)
        .status()?
        .success();
    let mut ro_node = None;
    if !ro {
        rep.note("remount,ro failed: read-only case not run");
    } else {
        match ctx.node(ctx.spec("g-ro", &dsn, "noop")).await {
            Err(e) => {
                let msg = format!("{e:#}");
                let first = msg.lines().find(|l| l.contains("rror")).unwrap_or(&msg);
                rep.check(
                    "read-only: refused at startup with a clear error",
                    first.to_lowercase().contains("read"),
                    first.chars().take(300).collect::<String>(),
                );
            }
            Ok(n) => {
                let api = Api::new(n.addr, Duration::from_secs(30), false)?;
                disk_probes(&api, &key, &actor, &mut t, "read-only").await;
                std::process::Command::new("mount")
                    .args(["-o", "remount,rw"])
                    .arg(&mnt)
                    .status()?;
                let rec_ro = recover(Duration::from_secs(15), async || {
                    api.issue_timed(&actor).await.answer.is_http(201)
                })
                .await;
                rep.check(
                    "read-only: writes recover after remount rw without a restart",
                    rec_ro.is_some(),
                    rec_ro.map_or("no 201 within 15 s".into(), |d| {
                        format!("{} ms", d.as_millis())
                    }),
                );
                ro_node = Some(n);
            }
        }
    }
    for (k, v) in &t {
        rep.row(k, v);
    }
    for phase in ["disk full", "read-only"] {
        let Some(issue) = t.get(&format!("{phase}: issue")) else {
            continue;
        };
        // A clear error: a documented envelope (5xx with a reason), no hang, no reset.
        let clear = issue
            .answers
            .keys()
            .all(|k| k == "http 201" || (k.starts_with("http 5") && k.len() > 8));
        rep.check(
            &format!("{phase}: writes fail with a clear error envelope"),
            clear && issue.max <= BOUND,
            issue.summary(),
        );
        if issue.answers.contains_key("http 201") {
            rep.note(format!(
                "{phase}: some writes still succeeded ({})",
                issue.summary()
            ));
        }
        let verify = get(&t, &format!("{phase}: verify (storage read)"));
        rep.check(
            &format!("{phase}: reads keep answering"),
            verify.count() > 0 && verify.answers.keys().all(|k| k == "valid"),
            verify.summary(),
        );
    }
    rep.check("disk full: server still running", up_after_full, "");
    rep.check(
        "disk full: writes recover without a restart",
        rec_full.is_some(),
        rec_full.map_or("no 201 within 30 s".into(), |d| {
            format!("{} ms", d.as_millis())
        }),
    );
    rep.recovery_ms = rec_full.map(|d| d.as_millis() as u64);
    if let Some(mut n) = ro_node {
        rep.check("read-only: node still running", n.is_running(), "");
        n.kill9().await;
    }
    let _ = std::process::Command::new("mount")
        .args(["-o", "remount,rw"])
        .arg(&mnt)
        .status();
    let text = sqlite3(&db, "PRAGMA integrity_check")
        .await
        .unwrap_or_else(|e| format!("{e:#}"));
    rep.check("integrity_check afterwards", text == "ok", text);
    drop(dir);
    Ok(())
}

async fn disk_probes(api: &Api, key: &str, actor: &str, t: &mut Tallies, phase: &str) {
    for _ in 0..5 {
        let i = api.issue_timed(actor).await;
        t.entry(format!("{phase}: issue")).or_default().add(&i);
        let v = api.verify_no_cache(key).await;
        t.entry(format!("{phase}: verify (storage read)"))
            .or_default()
            .add(&v);
        let r = api.ready().await;
        t.entry(format!("{phase}: GET /health/ready"))
            .or_default()
            .add(&r);
    }
}
