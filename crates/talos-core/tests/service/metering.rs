//! Metering through the service: credits spent by verification (exact across two services on
//! one database), refills at interval boundaries (a moved clock), actor balances and the cache
//! entries that say whether an actor is metered, and self-service scoping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use talos_cache::{MemoryCache, Redis, RedisCache, RedisSettings};
use talos_core::*;

use super::{NIL, SECRET_A, harness, spec, vreq, with_secret};

/// A clock the test sets.
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn at(t: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(t)))
    }
    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn credited(actor: &str, remaining: Option<i64>, refill: Option<(i64, RefillInterval)>) -> KeySpec {
    KeySpec {
        credits: Some(CreditsInput { remaining, refill }),
        ttl: Some("90d".into()),
        ..spec(actor)
    }
}

fn costing(cred: &str, cost: u64) -> VerifyRequest {
    VerifyRequest {
        cost: Some(cost),
        ..vreq(cred)
    }
}

/// `Ok(credits left)` or the refusal's code with the credits reported.
async fn spend(
    s: &Service,
    req: &VerifyRequest,
) -> Result<Option<i64>, (VerifyErrorCode, Option<i64>)> {
    let out = s.verify(NIL, req).await;
    let left = out.metering.credits_remaining;
    out.result.map(|_| left).map_err(|f| (f.code, left))
}

#[tokio::test(flavor = "multi_thread")]
async fn credits_are_spent_refused_at_zero_and_checked_with_cost_zero() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h
        .service
        .issue(NIL, credited("u", Some(3), None))
        .await
        .unwrap();
    assert_eq!(key.key.credits.unwrap().remaining, 3);
    let s = &key.secret;
    assert_eq!(
        spend(&h.service, &vreq(s)).await,
        Ok(Some(2)),
        "default cost 1"
    );
    assert_eq!(
        spend(&h.service, &costing(s, 0)).await,
        Ok(Some(2)),
        "cost 0 spends nothing"
    );
    assert_eq!(
        spend(&h.service, &costing(s, 5)).await,
        Err((VerifyErrorCode::UsageExceeded, Some(2))),
        "a cost above the balance is refused and spends nothing"
    );
    assert_eq!(spend(&h.service, &costing(s, 2)).await, Ok(Some(0)));
    assert_eq!(
        spend(&h.service, &vreq(s)).await,
        Err((VerifyErrorCode::UsageExceeded, Some(0)))
    );
    assert_eq!(
        spend(&h.service, &costing(s, 0)).await,
        Err((VerifyErrorCode::UsageExceeded, Some(0))),
        "cost 0 at zero: nothing left"
    );

    // Rotation carries the balance; the old key spends nothing more.
    let other = h
        .service
        .issue(NIL, credited("u", Some(5), None))
        .await
        .unwrap();
    spend(&h.service, &costing(&other.secret, 2)).await.unwrap();
    let rotated = h
        .service
        .rotate(NIL, &other.key.key_id, RotateRequest::default())
        .await
        .unwrap();
    assert_eq!(rotated.new.key.credits.unwrap().remaining, 3);
    assert_eq!(
        spend(&h.service, &vreq(&rotated.new.secret)).await,
        Ok(Some(2))
    );
    assert_eq!(
        spend(&h.service, &vreq(&other.secret)).await.unwrap_err().0,
        VerifyErrorCode::Revoked
    );

    // Removing the credits (update with the mask and no value) makes the key unlimited at once:
    // the update evicts the cached row.
    h.service
        .update_key(
            NIL,
            KeyKind::Issued,
            &key.key.key_id,
            UpdateRequest {
                mask: Some(vec![UpdateField::Credits]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(spend(&h.service, &vreq(s)).await, Ok(None));
}

/// A derived token verifies without storage: credits do not apply to it, and deriving does not
/// spend the parent's.
#[tokio::test(flavor = "multi_thread")]
async fn deriving_spends_no_credits() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h
        .service
        .issue(NIL, credited("u", Some(1), None))
        .await
        .unwrap();
    let t = h
        .service
        .derive(
            NIL,
            DeriveRequest {
                credential: key.secret.clone(),
                algorithm: TokenAlgorithm::Macaroon,
                ttl: Some("10m".into()),
                scopes: vec![],
                custom_claims: Default::default(),
                client_ip: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(spend(&h.service, &vreq(&t.token)).await, Ok(None));
    assert_eq!(spend(&h.service, &vreq(&key.secret)).await, Ok(Some(0)));
}

/// Refills happen exactly at 00:00 UTC (daily) and on the first of the month (monthly), once per
/// boundary, with the balance reset to the refill amount.
#[tokio::test(flavor = "multi_thread")]
async fn refills_apply_exactly_at_interval_boundaries() {
    let super::Harness { service, .. } = harness(&with_secret(SECRET_A)).await;
    let clock = ManualClock::at(utc(2030, 1, 31, 22, 0, 0));
    let s = service.with_clock(clock.clone());
    let daily = s
        .issue(
            NIL,
            credited("u", Some(2), Some((5, RefillInterval::Daily))),
        )
        .await
        .unwrap();
    let monthly = s
        .issue(
            NIL,
            credited("u", Some(1), Some((3, RefillInterval::Monthly))),
        )
        .await
        .unwrap();
    let fresh = s
        .issue(NIL, credited("u", None, Some((4, RefillInterval::Daily))))
        .await
        .unwrap();
    assert_eq!(
        fresh.key.credits.unwrap().remaining,
        4,
        "starts at the refill amount"
    );

    for _ in 0..2 {
        spend(&s, &vreq(&daily.secret)).await.unwrap();
    }
    spend(&s, &vreq(&monthly.secret)).await.unwrap();
    clock.set(utc(2030, 1, 31, 23, 59, 59));
    assert_eq!(
        spend(&s, &vreq(&daily.secret)).await.unwrap_err().0,
        VerifyErrorCode::UsageExceeded,
        "one second before midnight: no refill yet"
    );
    assert_eq!(
        spend(&s, &costing(&daily.secret, 0)).await.unwrap_err().0,
        VerifyErrorCode::UsageExceeded
    );

    clock.set(utc(2030, 2, 1, 0, 0, 0));
    assert_eq!(
        spend(&s, &costing(&daily.secret, 0)).await,
        Ok(Some(5)),
        "a due refill shows to a check"
    );
    assert_eq!(
        spend(&s, &vreq(&daily.secret)).await,
        Ok(Some(4)),
        "reset to 5, then spent"
    );
    assert_eq!(spend(&s, &vreq(&monthly.secret)).await, Ok(Some(2)));
    // Within the same day and month: no second refill.
    clock.set(utc(2030, 2, 1, 18, 0, 0));
    assert_eq!(spend(&s, &vreq(&daily.secret)).await, Ok(Some(3)));
    for left in [1, 0] {
        assert_eq!(spend(&s, &vreq(&monthly.secret)).await, Ok(Some(left)));
    }
    clock.set(utc(2030, 2, 28, 23, 59, 59));
    assert_eq!(
        spend(&s, &vreq(&monthly.secret)).await.unwrap_err().0,
        VerifyErrorCode::UsageExceeded
    );
    clock.set(utc(2030, 3, 1, 0, 0, 0));
    assert_eq!(spend(&s, &vreq(&monthly.secret)).await, Ok(Some(2)));
    // Days without verifications: the next one after them refills once, to the amount.
    clock.set(utc(2030, 3, 9, 12, 0, 0));
    assert_eq!(spend(&s, &vreq(&daily.secret)).await, Ok(Some(4)));
}

/// 200 concurrent verifications of cost 1, spread over two services that share one database,
/// against 50 credits: exactly 50 are valid.
async fn fifty_of_two_hundred(a: Arc<Service>, b: Arc<Service>) {
    let key = a.issue(NIL, credited("u", Some(50), None)).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            let secret = key.secret.clone();
            tokio::spawn(async move { s.verify(NIL, &vreq(&secret)).await })
        })
        .collect();
    let mut valid = 0;
    for t in tasks {
        let out = t.await.unwrap();
        match out.result {
            Ok(_) => valid += 1,
            Err(f) => {
                assert_eq!(f.code, VerifyErrorCode::UsageExceeded, "{f:?}");
                assert_eq!(out.metering.credits_remaining, Some(0));
            }
        }
    }
    assert_eq!(valid, 50);
    let row = a
        .get_key(NIL, KeyKind::Issued, &key.key.key_id)
        .await
        .unwrap();
    assert_eq!(row.credits.unwrap().remaining, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn credits_are_exact_across_two_services_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}", dir.path().join("t.db").display());
    talos_storage::migrate_up(&dsn).await.unwrap();
    let cfg = with_secret(SECRET_A);
    let node = || async {
        let store = talos_storage::connect(&dsn, &Default::default())
            .await
            .unwrap();
        let cache: Arc<MemoryCache<CachedKey>> = Arc::new(MemoryCache::new(1 << 20, |_| 100));
        Arc::new(Service::new(&cfg, store, cache).unwrap())
    };
    fifty_of_two_hundred(node().await, node().await).await;
}

/// Two services, each with its own pool, on one PostgreSQL database and one Redis.
#[tokio::test(flavor = "multi_thread")]
async fn credits_are_exact_across_two_services_on_postgres_and_redis() {
    let (Ok(admin), Ok(redis)) = (
        std::env::var("TALOS_TEST_DATABASE_URL"),
        std::env::var("TALOS_TEST_REDIS_URL"),
    ) else {
        eprintln!("TALOS_TEST_DATABASE_URL or TALOS_TEST_REDIS_URL unset: PostgreSQL leg not run");
        return;
    };
    let db = PgDb::create(&admin);
    talos_storage::migrate_up(&db.dsn).await.unwrap();
    let ns = format!("talos-test-{}", uuid::Uuid::new_v4().simple());
    let settings = RedisSettings::from_url(&redis, &ns).unwrap();
    let cfg = with_secret(SECRET_A);
    let node = || async {
        let store = talos_storage::connect(&db.dsn, &Default::default())
            .await
            .unwrap();
        let cache: Arc<RedisCache<CachedKey>> =
            Arc::new(RedisCache::new(Redis::connect(&settings).unwrap(), None));
        assert!(cache.wait_connected(Duration::from_secs(10)).await);
        Arc::new(Service::new(&cfg, store, cache).unwrap())
    };
    fifty_of_two_hundred(node().await, node().await).await;
}

/// A PostgreSQL database for one test, created with `psql` and dropped on drop.
struct PgDb {
    admin: String,
    name: String,
    dsn: String,
}

impl PgDb {
    fn create(admin: &str) -> PgDb {
        let name = format!("talos_core_{}", uuid::Uuid::new_v4().simple());
        let psql = |sql: &str| {
            std::process::Command::new("psql")
                .args([admin, "-q", "-c", sql])
                .output()
                .unwrap()
        };
        let out = psql(&format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let dsn = if query.is_empty() {
            format!("{base}/{name}")
        } else {
            format!("{base}/{name}?{query}")
        };
        PgDb {
            admin: admin.to_owned(),
            name,
            dsn,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                self.admin.as_str(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// An actor's quota is enforced from the moment `set_actor_quota` returns, even for a key whose
/// row was cached before (the cache said "not metered"); ingestion debits it, exactly once per
/// request id.
#[tokio::test(flavor = "multi_thread")]
async fn actor_balances_are_enforced_and_evict_cached_keys() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h.service.issue(NIL, spec("acme")).await.unwrap();
    let s = &key.secret;
    assert!(h.service.verify(NIL, &vreq(s)).await.result.is_ok());
    tokio::time::sleep(Duration::from_millis(50)).await; // the last-used write
    let before = h.store_calls();
    let out = h.service.verify(NIL, &vreq(s)).await;
    assert_eq!(out.cache, CacheStatus::Hit);
    assert_eq!(out.metering, Metering::default());
    assert_eq!(
        h.store_calls(),
        before,
        "an unmetered key costs no storage call"
    );

    let b = h.service.set_actor_quota(NIL, "acme", 100).await.unwrap();
    assert_eq!((b.quota_micros, b.remaining_micros), (100, 100));
    let out = h.service.verify(NIL, &vreq(s)).await;
    assert_eq!(
        out.metering.balance,
        Some(BalanceStatus {
            remaining_micros: 100,
            quota_micros: 100
        }),
        "the entry cached before the quota was evicted"
    );

    let usage = |request_id: &str, cost: i64| UsageInput {
        actor_id: "acme".into(),
        key_id: key.key.key_id.clone(),
        usage_type: "tokens".into(),
        usage_amount: 10,
        cost_micros: cost,
        model: "m".into(),
        request_id: Some(request_id.into()),
        session_id: String::new(),
    };
    let first = h.service.ingest_usage(NIL, usage("r1", 60)).await.unwrap();
    assert!(first.accepted);
    assert_eq!(first.balance.unwrap().remaining_micros, 40);
    let again = h.service.ingest_usage(NIL, usage("r1", 60)).await.unwrap();
    assert!(!again.accepted, "a repeated request id is not debited");
    assert_eq!(again.balance.unwrap().remaining_micros, 40);
    h.service.ingest_usage(NIL, usage("r2", 40)).await.unwrap();
    let out = h.service.verify(NIL, &vreq(s)).await;
    assert_eq!(
        out.result.unwrap_err().code,
        VerifyErrorCode::BalanceExhausted
    );
    assert_eq!(out.metering.balance.unwrap().remaining_micros, 0);

    h.service.top_up_actor(NIL, "acme", 5).await.unwrap();
    assert!(h.service.verify(NIL, &vreq(s)).await.result.is_ok());
    // Quota 0: unlimited again, and no balance reported.
    h.service.set_actor_quota(NIL, "acme", 0).await.unwrap();
    let out = h.service.verify(NIL, &vreq(s)).await;
    assert!(out.result.is_ok());
    assert_eq!(out.metering.balance, None);

    let history = h.service.usage_history(NIL, "acme", 0).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].request_id.as_deref(), Some("r2"));
    for bad in [
        UsageInput {
            cost_micros: -1,
            ..usage("r3", 0)
        },
        UsageInput {
            request_id: Some("x".repeat(37)),
            ..usage("r3", 0)
        },
        UsageInput {
            actor_id: String::new(),
            ..usage("r3", 0)
        },
    ] {
        let err = h.service.ingest_usage(NIL, bad).await.unwrap_err();
        assert!(matches!(err, CoreError::Invalid(_)), "{err:?}");
    }
    assert!(h.service.top_up_actor(NIL, "acme", 0).await.is_err());
    assert!(h.service.set_actor_quota(NIL, "acme", -1).await.is_err());
}

/// Self-service never shows or touches another actor's keys.
#[tokio::test(flavor = "multi_thread")]
async fn self_service_is_scoped_to_the_actor() {
    let h = harness(&with_secret(SECRET_A)).await;
    let s = &h.service;
    let req = |request_id: &str| SelfIssueRequest {
        request_id: Some(request_id.into()),
        ..Default::default()
    };
    let alice = s.self_issue(NIL, "alice", req("r-alice")).await.unwrap();
    assert_eq!(alice.key.name, "self-issued");
    assert_eq!(alice.key.actor_id, "alice");
    s.self_issue(NIL, "bob", SelfIssueRequest::default())
        .await
        .unwrap();

    let mine = s.self_list(NIL, "alice", 0, None).await.unwrap();
    assert_eq!(mine.keys.len(), 1);
    assert_eq!(mine.keys[0].key_id, alice.key.key_id);
    assert_eq!(
        s.self_list(NIL, "bob", 0, None).await.unwrap().keys.len(),
        1
    );
    assert!(
        s.self_list(NIL, "", 0, None).await.is_err(),
        "no actor, no list"
    );

    // Bob cannot revoke Alice's key, nor learn of it through her request id.
    let err = s
        .self_revoke_key(
            NIL,
            "bob",
            &alice.key.key_id,
            RevocationReason::Unspecified,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::KeyNotFound { .. }), "{err:?}");
    let err = s.self_issue(NIL, "bob", req("r-alice")).await.unwrap_err();
    assert!(matches!(err, CoreError::Duplicate), "{err:?}");
    assert!(matches!(
        s.self_revoke_key(
            NIL,
            "alice",
            &alice.key.key_id,
            RevocationReason::PrivilegeWithdrawn,
            None
        )
        .await,
        Err(CoreError::ReasonReserved)
    ));
    s.self_revoke_key(
        NIL,
        "alice",
        &alice.key.key_id,
        RevocationReason::KeyCompromise,
        Some("lost laptop".into()),
    )
    .await
    .unwrap();
    let out = s.verify(NIL, &vreq(&alice.secret)).await;
    assert_eq!(out.result.unwrap_err().code, VerifyErrorCode::Revoked);
    assert!(matches!(
        s.self_revoke_key(
            NIL,
            "alice",
            &alice.key.key_id,
            RevocationReason::Unspecified,
            None
        )
        .await,
        Err(CoreError::AlreadyRevoked)
    ));
    let b = s.actor_balance(NIL, "alice").await.unwrap();
    assert_eq!((b.quota_micros, b.remaining_micros), (0, 0));
}
