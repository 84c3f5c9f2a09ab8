//! Cache and process faults: Redis stopped/stalled with a revoke during the outage (c), two
//! nodes with a missed invalidation (d), SIGTERM under load (e), overload (h).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::json;
use talos_test_support::StallProxy;

use super::client::{Answer, Api, BATCH_IMPORT, Tally, Timed};
use super::env::{Node, Redis, migrate};
use super::{BOUND, Ctx, Report, recover};
use crate::pg::Cluster;

/// Two redis-cached nodes on one PostgreSQL, each reaching Redis through its own stall proxy.
struct Pair {
    _pg: Cluster,
    redis: Redis,
    pa: StallProxy,
    pb: StallProxy,
    _a: Node,
    _b: Node,
    a: Api,
    b: Api,
}

async fn pair(ctx: &Ctx, tag: &str) -> Result<Pair> {
    let pg = Cluster::start().await?;
    let dsn = pg.dsn_via(pg.addr(), "talos");
    migrate(&ctx.bin, &dsn).await?;
    let redis = Redis::start().await?;
    let pa = StallProxy::start(redis.addr())
        .await
        .context("starting a stall proxy")?;
    let pb = StallProxy::start(redis.addr())
        .await
        .context("starting a stall proxy")?;
    let mut sa = ctx.spec(&format!("{tag}-A"), &dsn, "redis");
    sa.redis = Some(pa.addr);
    let mut sb = ctx.spec(&format!("{tag}-B"), &dsn, "redis");
    sb.redis = Some(pb.addr);
    let na = ctx.node(sa).await?;
    let nb = ctx.node(sb).await?;
    let t = Duration::from_secs(20);
    Ok(Pair {
        a: Api::new(na.addr, t, false)?,
        b: Api::new(nb.addr, t, false)?,
        _pg: pg,
        redis,
        pa,
        pb,
        _a: na,
        _b: nb,
    })
}

/// Issues a key on A and verifies it twice on both nodes (Redis and each local layer warm).
async fn warm_key(ctx: &Ctx, p: &Pair) -> Result<(String, String)> {
    let (id, key) = p.a.issue(&ctx.tag("actor")).await?;
    for api in [&p.a, &p.b, &p.a, &p.b] {
        let t = api.verify(&key).await;
        ensure!(
            t.answer == Answer::Valid,
            "warm-up verify: {}",
            t.answer.label()
        );
    }
    Ok((id, key))
}

/// Verifies `key` on both nodes every 100 ms for `d`.
async fn watch(p: &Pair, key: &str, d: Duration, on_a: &mut Tally, on_b: &mut Tally) {
    let start = Instant::now();
    while start.elapsed() < d {
        let (x, y) = tokio::join!(p.a.verify(key), p.b.verify(key));
        on_a.add(&x);
        on_b.add(&y);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn redis_outage(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let mut p = pair(ctx, "c").await?;
    let look = Duration::from_secs(3);

    // 1. Redis stopped (SHUTDOWN NOSAVE), a revoke on A, Redis started again (empty).
    let (id, key) = warm_key(ctx, &p).await?;
    p.redis.stop().await?;
    let mut rev = Tally::default();
    rev.add(&p.a.revoke_timed(&id).await);
    let (mut da, mut db) = (Tally::default(), Tally::default());
    watch(&p, &key, look, &mut da, &mut db).await;
    p.redis.start_again().await?;
    let (_, fresh) = p.a.issue(&ctx.tag("actor")).await?;
    let rec = recover(Duration::from_secs(60), async || {
        p.a.verify(&fresh).await;
        p.b.verify(&fresh).await;
        p.redis.cli(&["DBSIZE"]).await.is_ok_and(|n| n != "0")
    })
    .await;
    let (mut aa, mut ab) = (Tally::default(), Tally::default());
    watch(&p, &key, look, &mut aa, &mut ab).await;
    rep.row("stopped: revoke on A", &rev);
    rep.row("stopped: verify revoked on A, down", &da);
    rep.row("stopped: verify revoked on B, down", &db);
    rep.row("stopped: verify revoked on A, after", &aa);
    rep.row("stopped: verify revoked on B, after", &ab);
    for (w, t) in [
        ("A down", &da),
        ("B down", &db),
        ("A after", &aa),
        ("B after", &ab),
    ] {
        rep.never_valid(&format!("Redis stopped: revoked key on {w}"), t);
    }
    rep.check(
        "Redis stopped: cache back in use without a restart",
        rec.is_some(),
        rec.map_or("Redis still empty after 60 s of verifies".into(), |d| {
            format!("{} ms after Redis answered PING", d.as_millis())
        }),
    );
    rep.recovery_ms = rec.map(|d| d.as_millis() as u64);

    // 2. Redis stalled for both nodes (data kept), a revoke on A, Redis back.
    let outage = Duration::from_secs(if ctx.short { 8 } else { 40 });
    let (id, key) = warm_key(ctx, &p).await?;
    p.pa.stall();
    p.pb.stall();
    let mut rev = Tally::default();
    rev.add(&p.a.revoke_timed(&id).await);
    let (mut da, mut db) = (Tally::default(), Tally::default());
    let rest = outage.saturating_sub(rev.max);
    watch(&p, &key, rest.min(Duration::from_secs(5)), &mut da, &mut db).await;
    tokio::time::sleep(rest.saturating_sub(Duration::from_secs(5))).await;
    p.pa.resume();
    p.pb.resume();
    let (mut aa, mut ab) = (Tally::default(), Tally::default());
    watch(&p, &key, Duration::from_secs(5), &mut aa, &mut ab).await;
    rep.row("stalled: revoke on A", &rev);
    rep.row("stalled: verify revoked on A, stalled", &da);
    rep.row("stalled: verify revoked on B, stalled", &db);
    rep.row("stalled: verify revoked on A, after", &aa);
    rep.row("stalled: verify revoked on B, after", &ab);
    rep.bounded("stalled: revoke", &rev, BOUND);
    rep.bounded("stalled: verify on B", &db, BOUND);
    for (w, t) in [
        ("A stalled", &da),
        ("B stalled", &db),
        ("A after", &aa),
        ("B after", &ab),
    ] {
        rep.never_valid(
            &format!("Redis stalled {}s: revoked key on {w}", outage.as_secs()),
            t,
        );
    }
    Ok(())
}

pub async fn missed_invalidation(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let p = pair(ctx, "d").await?;
    let (id, key) = warm_key(ctx, &p).await?;
    // Only B's Redis link is stalled: A's revoke evicts Redis and publishes; B misses it.
    p.pb.stall();
    let mut rev = Tally::default();
    rev.add(&p.a.revoke_timed(&id).await);
    let (mut da, mut db) = (Tally::default(), Tally::default());
    watch(&p, &key, Duration::from_secs(4), &mut da, &mut db).await;
    p.pb.resume();
    let (mut aa, mut ab) = (Tally::default(), Tally::default());
    watch(&p, &key, Duration::from_secs(4), &mut aa, &mut ab).await;
    rep.row("revoke on A", &rev);
    rep.row("verify revoked on A, B stalled", &da);
    rep.row("verify revoked on B, B stalled", &db);
    rep.row("verify revoked on A, after", &aa);
    rep.row("verify revoked on B, after", &ab);
    rep.check(
        "revoke on A answers 204",
        rev.answers.contains_key("http 204"),
        rev.summary(),
    );
    rep.bounded("verify on B while its Redis link is stalled", &db, BOUND);
    for (w, t) in [
        ("A", &da),
        ("B (stalled)", &db),
        ("A after", &aa),
        ("B after", &ab),
    ] {
        rep.never_valid(&format!("revoked key on {w}"), t);
    }
    Ok(())
}

pub async fn sigterm(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    // PostgreSQL, so SQLite's single writer does not mix lock waits into the shutdown picture.
    let pg = Cluster::start().await?;
    let dsn = pg.dsn_via(pg.addr(), "talos");
    migrate(&ctx.bin, &dsn).await?;
    let mut node = ctx.node(ctx.spec("e", &dsn, "memory")).await?;
    // A new connection per request: a failure belongs to that request alone.
    let api = Api::new(node.addr, Duration::from_secs(20), true)?;
    let (_, key) = api.issue(&ctx.tag("actor")).await?;
    api.verify(&key).await;
    let stop = Arc::new(AtomicBool::new(false));
    let term_at: Arc<std::sync::Mutex<Option<Instant>>> = Default::default();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (api, key, stop, term_at) = (api.clone(), key.clone(), stop.clone(), term_at.clone());
        let actor = ctx.tag("load");
        tasks.push(tokio::spawn(async move {
            let mut before = Tally::default();
            let mut after = Tally::default();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let sent = Instant::now();
                let t = if i % 4 == 0 {
                    api.issue_timed(&actor).await
                } else {
                    api.verify(&key).await
                };
                let after_term = term_at.lock().unwrap().is_some_and(|at| sent >= at);
                if after_term { &mut after } else { &mut before }.add(&t);
                if t.answer == Answer::Refused {
                    // The node is gone; no point spinning on connect.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            (before, after)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A slow request in flight when the signal arrives: a batch import of 1000 keys.
    let bapi = api.clone();
    let tag = ctx.tag("e-batch");
    let body = json!({ "keys": (0..1000).map(|i| json!({
        "name": "chaos", "actor_id": tag, "scopes": ["read"],
        "raw_key": format!("{tag}-{i:05}-0123456789abcdef") })).collect::<Vec<_>>() });
    let batch = tokio::spawn(async move {
        bapi.call(reqwest::Method::POST, BATCH_IMPORT, Some(&body), false)
            .await
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    *term_at.lock().unwrap() = Some(Instant::now());
    node.signal("TERM");
    let exit = node.wait_exit(Duration::from_secs(25)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut before, mut after) = (Tally::default(), Tally::default());
    for t in tasks {
        let (b, a) = t.await?;
        before.merge(&b);
        after.merge(&a);
    }
    let batch: Timed = batch.await?;
    let mut bt = Tally::default();
    bt.add(&batch);
    rep.row("load before SIGTERM", &before);
    rep.row("load sent after SIGTERM", &after);
    rep.row("batch import in flight at SIGTERM", &bt);
    let ok = |k: &str| k == "valid" || k == "http 201";
    rep.check(
        "no failure before SIGTERM",
        before.answers.keys().all(|k| ok(k)),
        before.summary(),
    );
    rep.check(
        "after SIGTERM: answered or refused, never reset / 5xx",
        after
            .answers
            .keys()
            .all(|k| ok(k) || k == "connection refused"),
        after.summary(),
    );
    rep.check(
        "the batch import in flight completes",
        batch.answer.is_http(200) && batch.body["success_count"] == json!(1000),
        format!(
            "{} in {} ms",
            batch.answer.label(),
            batch.latency.as_millis()
        ),
    );
    rep.check(
        "process exits after SIGTERM",
        exit.is_some(),
        exit.clone()
            .unwrap_or_else(|| "still running after 25 s".into()),
    );
    Ok(())
}

pub async fn overload(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let dsn = format!("sqlite://{}", ctx.work.join("h.db").display());
    migrate(&ctx.bin, &dsn).await?;
    let mut spec = ctx.spec("h", &dsn, "memory");
    if ctx.max_inflight {
        spec.extras.push(("serve.http.max_inflight", json!(128)));
    } else {
        rep.note("serve.http.max_inflight not supported by this server: no shedding configured");
    }
    let mut node = ctx.node(spec).await?;
    let api = Api::new(node.addr, Duration::from_secs(10), false)?;
    let (_, key) = api.issue(&ctx.tag("actor")).await?;
    api.verify(&key).await;
    let (rss0, fds0) = node.rss_fds();
    // Saturation: the bench's 64 connections (docs/benchmarks.md).
    let sat = 64;
    let (t_sat, _, secs) = load(&api, &key, sat, Duration::from_secs(5), node.pid).await;
    rep.row(&format!("{sat} connections (saturation)"), &t_sat);
    rep.note(format!(
        "saturation: {:.0} req/s at {sat} connections",
        t_sat.count() as f64 / secs
    ));
    let over = sat * 10;
    let api_over = Api::new(node.addr, Duration::from_secs(10), false)?;
    let (t_over, rss_max, secs) =
        load(&api_over, &key, over, Duration::from_secs(10), node.pid).await;
    rep.row(&format!("{over} connections (10x)"), &t_over);
    // The client's idle keep-alive connections would count as the server's open files.
    drop(api_over);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let admitted = t_over.answers.get("valid").copied().unwrap_or(0);
    let shed = t_over
        .answers
        .iter()
        .filter(|(k, _)| k.starts_with("http 503") && k.contains("OVERLOADED"))
        .map(|(_, v)| v)
        .sum::<u64>();
    rep.note(format!(
        "10x: {:.0} req/s answered, {admitted} admitted, {shed} shed with 503 OVERLOADED",
        t_over.count() as f64 / secs
    ));
    let alive = api.alive().await;
    rep.check(
        "server stays up",
        alive.answer.is_http(200) && node.is_running(),
        alive.answer.label(),
    );
    rep.check(
        "excess answered 503 OVERLOADED",
        shed > 0,
        format!("{shed} of {} answers", t_over.count()),
    );
    let p99 = t_over.percentile(99.0);
    rep.check(
        "no client timeouts, 408s or broken connections at 10x",
        !t_over.answers.contains_key("client timeout")
            && !t_over.answers.contains_key("connection broken")
            && !t_over.answers.keys().any(|k| k.starts_with("http 408")),
        t_over.summary(),
    );
    rep.check(
        "p99 of all answers at 10x under 1 s",
        p99 < Duration::from_secs(1),
        format!(
            "p99 {} ms, max {} ms",
            p99.as_millis(),
            t_over.max.as_millis()
        ),
    );
    let (rss1, fds1) = node.rss_fds();
    rep.check(
        "RSS bounded (peak < 512 MiB)",
        rss_max < 512 * 1024,
        format!(
            "RSS {} MiB before, peak {} MiB, {} MiB after; fds {fds0} → {fds1}",
            rss0 / 1024,
            rss_max / 1024,
            rss1 / 1024
        ),
    );
    node.kill9().await;
    Ok(())
}

/// `conns` concurrent loops of cached verifies for `d`; (tally, peak RSS KiB, seconds).
async fn load(api: &Api, key: &str, conns: usize, d: Duration, pid: u32) -> (Tally, u64, f64) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (api, key) = (api.clone(), key.to_string());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            while start.elapsed() < d {
                t.add(&api.verify(&key).await);
            }
            t
        }));
    }
    let mut rss_max = 0;
    while start.elapsed() < d {
        rss_max = rss_max.max(crate::proc::rss_fds(pid).0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.merge(&t);
        }
    }
    (all, rss_max, start.elapsed().as_secs_f64())
}
