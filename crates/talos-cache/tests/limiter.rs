//! Contract suite for the rate limiters: memory always, Redis when `TALOS_TEST_REDIS_URL` is set
//! (one random namespace per test). Includes the accuracy check under concurrent load, on one
//! node and on two nodes sharing Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use talos_cache::{CacheKey, MemoryLimiter, Rate, RateLimiter, Redis, RedisLimiter, RedisSettings};
use talos_test_support::redis_url;
use uuid::Uuid;

fn redis_limiter(url: &str, ns: &str) -> RedisLimiter {
    RedisLimiter::new(Redis::connect(&RedisSettings::from_url(url, ns).unwrap()).unwrap())
}

fn namespace() -> String {
    format!("talos-test-{}", Uuid::new_v4().simple())
}

async fn contract(l: &dyn RateLimiter) {
    let rate = Rate::new(5, Duration::from_secs(10)).unwrap();
    let nid = Uuid::new_v4();
    let k = CacheKey::new(nid, "key-1");
    for want in (0..5).rev() {
        let d = l.check(&k, rate).await.unwrap();
        assert!(d.allowed, "burst of quota");
        assert_eq!(d.remaining, want);
        assert_eq!(d.retry_after, Duration::ZERO);
        assert!(
            d.reset_after > Duration::ZERO && d.reset_after <= Duration::from_secs(10),
            "{d:?}"
        );
    }
    let d = l.check(&k, rate).await.unwrap();
    assert!(!d.allowed, "quota exhausted");
    assert_eq!(d.remaining, 0);
    // One emission interval (2 s) until the next request, the full window until the whole burst.
    assert!(
        d.retry_after > Duration::from_millis(1500) && d.retry_after <= Duration::from_secs(2),
        "{d:?}"
    );
    assert!(
        d.reset_after > Duration::from_secs(9) && d.reset_after <= Duration::from_secs(10),
        "{d:?}"
    );
    // A denied request costs nothing: still one interval away.
    let d2 = l.check(&k, rate).await.unwrap();
    assert!(!d2.allowed && d2.retry_after <= d.retry_after);
    // Other keys and other networks have their own buckets.
    assert!(
        l.check(&CacheKey::new(nid, "key-2"), rate)
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(
        l.check(&CacheKey::new(Uuid::new_v4(), "key-1"), rate)
            .await
            .unwrap()
            .remaining,
        4
    );
    // Large quotas (a 10 µs interval) are counted exactly too.
    let big = Rate::new(100_000, Duration::from_secs(1)).unwrap();
    let g = CacheKey::new(nid, "big");
    assert_eq!(l.check(&g, big).await.unwrap().remaining, 99_999);
    // (The next one finds 99,998 plus whatever refilled in the time between the two calls.)
    assert!((99_998..=99_999).contains(&l.check(&g, big).await.unwrap().remaining));
    // Refill: 2 per 200 ms is one per 100 ms.
    let fast = Rate::new(2, Duration::from_millis(200)).unwrap();
    let f = CacheKey::new(nid, "fast");
    assert!(l.check(&f, fast).await.unwrap().allowed);
    assert!(l.check(&f, fast).await.unwrap().allowed);
    assert!(!l.check(&f, fast).await.unwrap().allowed);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        l.check(&f, fast).await.unwrap().allowed,
        "one interval later one more is allowed"
    );
    assert!(!l.check(&f, fast).await.unwrap().allowed);
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_limiter_contract() {
    contract(&MemoryLimiter::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_limiter_contract() {
    let Some(url) = redis_url() else { return };
    contract(&redis_limiter(&url, &namespace())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_limiter_unreachable_is_an_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = RedisSettings::from_url(&format!("redis://127.0.0.1:{closed}"), "x").unwrap();
    s.timeout = Duration::from_millis(500);
    let l = RedisLimiter::new(Redis::connect(&s).unwrap());
    let rate = Rate::new(1, Duration::from_secs(1)).unwrap();
    assert!(
        l.check(&CacheKey::new(Uuid::nil(), "k"), rate)
            .await
            .is_err()
    );
}

/// Hammers one key from `tasks` concurrent tasks, spread round-robin over `limiters` (nodes),
/// for `run`. Returns (granted, span_min, span_max): the span of time the grants can have come
/// from, bounded from below and above.
async fn hammer(
    limiters: Vec<Arc<dyn RateLimiter>>,
    rate: Rate,
    tasks: usize,
    run: Duration,
) -> (u64, Duration, Duration) {
    let key = CacheKey::new(Uuid::new_v4(), "hot");
    let start = Instant::now();
    let mut handles = Vec::new();
    for i in 0..tasks {
        let l = limiters[i % limiters.len()].clone();
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            let (mut granted, mut first_done, mut last_sent) = (0u64, None::<Instant>, start);
            while start.elapsed() < run {
                last_sent = Instant::now();
                let d = l.check(&key, rate).await.unwrap();
                first_done.get_or_insert_with(Instant::now);
                granted += u64::from(d.allowed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (granted, first_done.unwrap(), last_sent, Instant::now())
        }));
    }
    let (mut granted, mut first_done, mut last_sent, mut last_done) =
        (0, None::<Instant>, start, start);
    for h in handles {
        let (g, f, s, d) = h.await.unwrap();
        granted += g;
        first_done = Some(first_done.map_or(f, |x| x.min(f)));
        last_sent = last_sent.max(s);
        last_done = last_done.max(d);
    }
    // Every grant happened between `start` and `last_done`; the limiter was asked continuously
    // between the first answer and the last request.
    (
        granted,
        last_sent.saturating_duration_since(first_done.unwrap()),
        last_done - start,
    )
}

/// Beyond the initial burst of `quota`, grants stay within [N, N + 1%] per window (±1 request
/// of rounding at the edges of the measured span).
fn assert_accuracy(
    label: &str,
    rate: Rate,
    (granted, span_min, span_max): (u64, Duration, Duration),
) {
    let t = rate.emission_interval_nanos() as f64;
    let beyond = granted.saturating_sub(rate.quota) as f64;
    let (lo, hi) = (
        span_min.as_nanos() as f64 / t,
        span_max.as_nanos() as f64 / t,
    );
    let overshoot = (beyond / hi - 1.0) * 100.0;
    eprintln!(
        "{label}: granted {granted} = burst {} + {beyond}; allowed by the rate over the run: {lo:.1}..{hi:.1}; overshoot vs. the upper bound {overshoot:+.2}%",
        rate.quota
    );
    assert!(
        beyond <= hi * 1.01 + 1.0,
        "{label}: {beyond} granted beyond the burst, rate allows at most {hi:.1}"
    );
    assert!(
        beyond >= lo * 0.99 - 1.0,
        "{label}: {beyond} granted beyond the burst, rate allows at least {lo:.1}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_limiter_accuracy_under_concurrency() {
    let rate = Rate::new(50, Duration::from_secs(1)).unwrap();
    let l: Arc<dyn RateLimiter> = Arc::new(MemoryLimiter::default());
    let r = hammer(vec![l], rate, 32, Duration::from_millis(2500)).await;
    assert_accuracy("memory, one node", rate, r);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_limiter_accuracy_one_and_two_nodes() {
    let Some(url) = redis_url() else { return };
    let rate = Rate::new(50, Duration::from_secs(1)).unwrap();
    let ns = namespace();
    let one: Arc<dyn RateLimiter> = Arc::new(redis_limiter(&url, &ns));
    let r = hammer(vec![one], rate, 32, Duration::from_millis(2500)).await;
    assert_accuracy("redis, one node", rate, r);
    // Two nodes: two independent connections sharing the bucket.
    let a: Arc<dyn RateLimiter> = Arc::new(redis_limiter(&url, &ns));
    let b: Arc<dyn RateLimiter> = Arc::new(redis_limiter(&url, &ns));
    let r = hammer(vec![a, b], rate, 32, Duration::from_millis(2500)).await;
    assert_accuracy("redis, two nodes", rate, r);
}
