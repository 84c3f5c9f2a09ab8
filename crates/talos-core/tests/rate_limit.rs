//! Per-key rate limits through `Service::verify` with the in-memory limiter: counters, refusal,
//! cache hits still counted, the reloadable switch, derived tokens exempt, fail open / closed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use talos_cache::{CacheError, CacheKey, Decision, Rate, RateLimiter};
use talos_core::config::{Config, load_str};
use talos_core::*;
use talos_test_support::Builder;
use uuid::Uuid;

const SECRET: &str = "rate-limit-test-secret-0123456789abcdefghij";
const NIL: Uuid = Uuid::nil();

/// The test deployment (SQLite in memory) with the dev JWKS, a memory cache and `rate_limit`
/// set to the settings in `rate_limit_yaml`.
fn config(rate_limit_yaml: &str) -> Config {
    let yaml = Builder::new()
        .secret(SECRET)
        .quickstart_jwks()
        .cache("memory")
        .config(&format!("rate_limit:\n{rate_limit_yaml}"))
        .yaml();
    load_str(&yaml, "t.yaml", &BTreeMap::new()).unwrap().0
}

fn limited(quota: i64, window: &str) -> KeySpec {
    KeySpec {
        name: "k".into(),
        actor_id: "u".into(),
        rate_limit_policy: Some(RateLimitInput {
            quota,
            window: window.into(),
        }),
        ..Default::default()
    }
}

fn vreq(cred: &str) -> VerifyRequest {
    VerifyRequest {
        credential: cred.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_is_enforced_on_verify_and_counted_on_cache_hits() {
    let svc = Service::from_config(&config("  enabled: true\n"))
        .await
        .unwrap();
    let key = svc.issue(NIL, limited(3, "60s")).await.unwrap();
    let mut caches = Vec::new();
    for want in [2, 1, 0] {
        let out = svc.verify(NIL, &vreq(&key.secret)).await;
        caches.push(out.cache);
        assert!(out.rate_limited_key);
        let v = out.result.expect("within quota");
        assert_eq!(
            v.rate_limit_policy,
            Some(RateLimitPolicy {
                quota: 3,
                window_secs: 60
            })
        );
        let rl = out.rate_limit.expect("the limiter answered");
        assert_eq!(rl.remaining, want);
        assert_eq!(rl.retry_after, None);
        assert!(rl.reset_time > chrono::Utc::now());
    }
    assert_eq!(
        caches,
        [CacheStatus::Miss, CacheStatus::Hit, CacheStatus::Hit],
        "hits are counted too"
    );
    let out = svc.verify(NIL, &vreq(&key.secret)).await;
    assert_eq!(out.cache, CacheStatus::Hit);
    let err = out.result.unwrap_err();
    assert_eq!(err.code, VerifyErrorCode::RateLimited);
    assert_eq!(err.code.label(), "rate_limited");
    assert_eq!(err.message, "rate limit exceeded");
    let rl = out.rate_limit.expect("refusals carry the counters");
    assert_eq!(rl.remaining, 0);
    let wait = rl.retry_after.expect("a refusal says when to retry");
    assert!(
        wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
        "{wait:?}: one interval is 60s/3"
    );

    // Another key has its own bucket; a key without a policy is never counted.
    let other = svc.issue(NIL, limited(3, "60s")).await.unwrap();
    assert_eq!(
        svc.verify(NIL, &vreq(&other.secret))
            .await
            .rate_limit
            .unwrap()
            .remaining,
        2
    );
    let free = svc
        .issue(
            NIL,
            KeySpec {
                name: "f".into(),
                actor_id: "u".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for _ in 0..5 {
        let out = svc.verify(NIL, &vreq(&free.secret)).await;
        assert!(out.result.is_ok());
        assert!(out.rate_limit.is_none() && !out.rate_limited_key);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_keys_are_not_counted_and_derived_tokens_are_not_limited() {
    let svc = Service::from_config(&config("  enabled: true\n"))
        .await
        .unwrap();
    let key = svc.issue(NIL, limited(1, "1h")).await.unwrap();
    let derived = svc
        .derive(
            NIL,
            DeriveRequest {
                credential: key.secret.clone(),
                algorithm: TokenAlgorithm::Jwt,
                ttl: None,
                scopes: vec![],
                custom_claims: Default::default(),
                client_ip: None,
            },
        )
        .await
        .unwrap();
    // Deriving checked the parent without spending its quota of 1.
    assert!(svc.verify(NIL, &vreq(&key.secret)).await.result.is_ok());
    assert_eq!(
        svc.verify(NIL, &vreq(&key.secret))
            .await
            .result
            .unwrap_err()
            .code,
        VerifyErrorCode::RateLimited
    );
    for _ in 0..3 {
        let out = svc.verify(NIL, &vreq(&derived.token)).await;
        assert!(out.result.is_ok(), "derived tokens are not rate limited");
        assert!(out.rate_limit.is_none() && !out.rate_limited_key);
    }
    // A revoked key fails as revoked, before the limiter.
    let revoked = svc.issue(NIL, limited(1, "1h")).await.unwrap();
    svc.revoke(
        NIL,
        None,
        &revoked.key.key_id,
        RevokeRequest {
            reason: RevocationReason::KeyCompromise,
            reason_text: None,
        },
    )
    .await
    .unwrap();
    let out = svc.verify(NIL, &vreq(&revoked.secret)).await;
    assert_eq!(out.result.unwrap_err().code, VerifyErrorCode::Revoked);
    assert!(out.rate_limit.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_switch_is_hot_reloadable() {
    let svc = Service::from_config(&config("  enabled: false\n"))
        .await
        .unwrap();
    let key = svc.issue(NIL, limited(1, "1h")).await.unwrap();
    for _ in 0..3 {
        let out = svc.verify(NIL, &vreq(&key.secret)).await;
        assert!(out.result.is_ok(), "limiter off: no limit");
        assert!(
            out.rate_limit.is_none() && !out.rate_limited_key,
            "and no counters, not a fake 0"
        );
    }
    svc.reload(&config("  enabled: true\n")).unwrap();
    assert!(svc.verify(NIL, &vreq(&key.secret)).await.result.is_ok());
    assert_eq!(
        svc.verify(NIL, &vreq(&key.secret))
            .await
            .result
            .unwrap_err()
            .code,
        VerifyErrorCode::RateLimited
    );
    svc.reload(&config("  enabled: false\n")).unwrap();
    assert!(svc.verify(NIL, &vreq(&key.secret)).await.result.is_ok());
}

/// A limiter whose backend is down.
struct Down;

#[async_trait]
impl RateLimiter for Down {
    fn kind(&self) -> &'static str {
        "down"
    }
    async fn check(&self, _: &CacheKey, _: Rate) -> Result<Decision, CacheError> {
        Err(CacheError::Unavailable("connection refused".into()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_limiter_fails_open_or_closed() {
    let open = Service::from_config(&config("  enabled: true\n"))
        .await
        .unwrap()
        .with_limiter(Arc::new(Down));
    let key = open.issue(NIL, limited(1, "1h")).await.unwrap();
    for _ in 0..3 {
        let out = open.verify(NIL, &vreq(&key.secret)).await;
        assert!(out.result.is_ok(), "fails open by default");
        assert!(
            out.rate_limit.is_none(),
            "counters omitted when the limiter did not answer"
        );
        assert!(out.rate_limited_key);
    }
    let closed = Service::from_config(&config("  enabled: true\n  fail_closed: true\n"))
        .await
        .unwrap()
        .with_limiter(Arc::new(Down));
    let key = closed.issue(NIL, limited(1, "1h")).await.unwrap();
    let out = closed.verify(NIL, &vreq(&key.secret)).await;
    assert_eq!(
        out.result.unwrap_err().code,
        VerifyErrorCode::RateLimited,
        "fail_closed denies"
    );
    assert!(out.rate_limit.is_none());
    // Keys without a policy are unaffected either way.
    let free = closed
        .issue(
            NIL,
            KeySpec {
                name: "f".into(),
                actor_id: "u".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(closed.verify(NIL, &vreq(&free.secret)).await.result.is_ok());
}
