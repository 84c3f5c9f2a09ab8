//! The service end to end on SQLite in memory, with counting wrappers around storage and cache
//! to prove which paths do no I/O.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use talos_cache::{CacheError, CacheKey, KeyCache, MemoryCache};
use talos_core::config::{Config, load_str};
use talos_core::*;
use talos_storage::{Layer, Layered, StoreOptions};
use talos_test_support::Builder;
use uuid::Uuid;

const SECRET_A: &str = "test-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SECRET_B: &str = "test-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[path = "service/metering.rs"]
mod metering;
#[path = "service/revocation.rs"]
mod revocation;

#[path = "service/last_used.rs"]
mod last_used;

#[path = "service/tenants.rs"]
mod tenants;

/// Counts every storage call; wraps a real store through `talos_storage::Layered`.
struct CountingStore {
    calls: AtomicUsize,
    /// When set, the next key read (by id or by hash) parks after reading, to let a test commit
    /// a mutation between a verification's read and what it does next.
    gate: std::sync::Mutex<Option<Gate>>,
    /// When set, `ping` never answers (a stalled database).
    stall_ping: std::sync::atomic::AtomicBool,
}

/// `reached` fires once the read is done; the read returns when `release` fires.
struct Gate {
    reached: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
}

impl CountingStore {
    async fn park(&self) {
        let gate = self.gate.lock().unwrap().take();
        if let Some(g) = gate {
            let _ = g.reached.send(());
            let _ = g.release.await;
        }
    }
}

impl Layer for CountingStore {
    async fn around<T, F>(&self, method: &'static str, op: F) -> talos_storage::Result<T>
    where
        T: Send + 'static,
        F: Future<Output = talos_storage::Result<T>> + Send + 'static,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if method == "ping" && self.stall_ping.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let r = op.await;
        if matches!(method, "get_key" | "find_imported_by_hashes") {
            self.park().await;
        }
        r
    }
}

/// Counts every cache call, delegating to a memory cache.
struct CountingCache {
    inner: MemoryCache<CachedKey>,
    calls: AtomicUsize,
}

#[async_trait]
impl KeyCache<CachedKey> for CountingCache {
    fn kind(&self) -> &'static str {
        "counting"
    }
    async fn get(&self, k: &CacheKey) -> Result<Option<CachedKey>, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get(k).await
    }
    async fn ticket(&self, k: &CacheKey) -> Result<talos_cache::Ticket, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.ticket(k).await
    }
    async fn put(
        &self,
        k: &CacheKey,
        v: CachedKey,
        ttl: Duration,
        t: &talos_cache::Ticket,
    ) -> Result<bool, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.put(k, v, ttl, t).await
    }
    async fn evict(&self, k: &CacheKey) -> Result<(), CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.evict(k).await
    }
}

struct Harness {
    service: Service,
    store: Arc<CountingStore>,
    cache: Arc<CountingCache>,
}

impl Harness {
    fn store_calls(&self) -> usize {
        self.store.calls.load(Ordering::SeqCst)
    }
    fn cache_calls(&self) -> usize {
        self.cache.calls.load(Ordering::SeqCst)
    }
}

/// The test deployment with the dev JWKS and a memory cache, no secret in the file (tests set it
/// through `env`, as an operator may), `extra_yaml` merged over it.
fn config(extra_yaml: &str, env: &[(&str, &str)]) -> Config {
    let yaml = Builder::new()
        .without_secret()
        .quickstart_jwks()
        .cache("memory")
        .config(extra_yaml)
        .yaml();
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load_str(&yaml, "test.yaml", &env).unwrap().0
}

async fn harness(c: &Config) -> Harness {
    harness_with(c, MemoryCache::new(1 << 20, |_| 100)).await
}

async fn harness_with(c: &Config, memory: MemoryCache<CachedKey>) -> Harness {
    let inner = talos_storage::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap();
    let store = Arc::new(CountingStore {
        calls: AtomicUsize::new(0),
        gate: Default::default(),
        stall_ping: Default::default(),
    });
    let cache = Arc::new(CountingCache {
        inner: memory,
        calls: AtomicUsize::new(0),
    });
    let layered = Arc::new(Layered::new(inner, store.clone()));
    let service = Service::new(c, layered, cache.clone()).unwrap();
    Harness {
        service,
        store,
        cache,
    }
}

fn with_secret(current: &str) -> Config {
    config("", &[("TALOS_SECRETS_HMAC_CURRENT", current)])
}

fn spec(actor: &str) -> KeySpec {
    KeySpec {
        name: "k".into(),
        actor_id: actor.into(),
        scopes: vec!["read".into()],
        ..Default::default()
    }
}

fn vreq(cred: &str) -> VerifyRequest {
    VerifyRequest {
        credential: cred.into(),
        ..Default::default()
    }
}

const NIL: Uuid = Uuid::nil();

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_malformed_credentials_cost_no_io() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h.service.issue(NIL, spec("u")).await.unwrap();
    let s = &key.secret;
    let flipped = format!(
        "{}{}",
        &s[..s.len() - 1],
        if s.ends_with('2') { '3' } else { '2' }
    );
    let (store0, cache0) = (h.store_calls(), h.cache_calls());
    for cred in [
        flipped.as_str(),
        "talos_v1_short_x",
        "talos_v1_garbage!!_zz",
        &format!("{s}x"),
    ] {
        let out = h.service.verify(NIL, &vreq(cred)).await;
        let err = out.result.unwrap_err();
        assert_eq!(err.code, VerifyErrorCode::NotFound, "{cred}");
        assert_eq!(out.cache, CacheStatus::Skip);
    }
    assert_eq!(
        h.store_calls(),
        store0,
        "a forged credential must not touch storage"
    );
    assert_eq!(
        h.cache_calls(),
        cache0,
        "a forged credential must not touch the cache"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_hit_skips_storage_and_revocation_evicts() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h.service.issue(NIL, spec("u")).await.unwrap();
    let first = h.service.verify(NIL, &vreq(&key.secret)).await;
    assert_eq!(first.cache, CacheStatus::Miss);
    assert!(first.result.is_ok());
    tokio::time::sleep(Duration::from_millis(50)).await; // let the last-used write finish
    let before = h.store_calls();
    let second = h.service.verify(NIL, &vreq(&key.secret)).await;
    assert_eq!(second.cache, CacheStatus::Hit);
    assert_eq!(second.result.unwrap().key_id, key.key.key_id);
    assert_eq!(
        h.store_calls(),
        before,
        "a cache hit must not touch storage"
    );
    h.service
        .revoke(
            NIL,
            None,
            &key.key.key_id,
            RevokeRequest {
                reason: RevocationReason::KeyCompromise,
                reason_text: None,
            },
        )
        .await
        .unwrap();
    let after = h.service.verify(NIL, &vreq(&key.secret)).await;
    assert_eq!(
        after.result.unwrap_err().code,
        VerifyErrorCode::Revoked,
        "revocation evicts the cached entry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bypass_modes() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h.service.issue(NIL, spec("u")).await.unwrap();
    let mut r = vreq(&key.secret);
    r.cache = CacheMode::NoStore;
    assert_eq!(h.service.verify(NIL, &r).await.cache, CacheStatus::Skip);
    assert_eq!(
        h.service.verify(NIL, &vreq(&key.secret)).await.cache,
        CacheStatus::Miss,
        "no-store wrote nothing"
    );
    r.cache = CacheMode::NoCache;
    assert_eq!(h.service.verify(NIL, &r).await.cache, CacheStatus::Skip);
    assert_eq!(
        h.service.verify(NIL, &vreq(&key.secret)).await.cache,
        CacheStatus::Hit
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn derived_tokens_verify_without_storage() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h.service.issue(NIL, spec("actor-1")).await.unwrap();
    for algorithm in [TokenAlgorithm::Jwt, TokenAlgorithm::Macaroon] {
        let t = h
            .service
            .derive(
                NIL,
                DeriveRequest {
                    credential: key.secret.clone(),
                    algorithm,
                    ttl: Some("10m".into()),
                    scopes: vec![],
                    custom_claims: serde_json::from_str(r#"{"role":"x","sub":"ignored"}"#).unwrap(),
                    client_ip: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(t.claims.get("role").and_then(|v| v.as_str()), Some("x"));
        // Derivation verified the parent, which writes last_used in the background; let it land.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = (h.store_calls(), h.cache_calls());
        let out = h.service.verify(NIL, &vreq(&t.token)).await;
        let v = out.result.unwrap();
        assert_eq!(
            (v.key_id.as_str(), v.actor_id.as_str()),
            (key.key.key_id.as_str(), "actor-1")
        );
        assert_eq!(out.cache, CacheStatus::Skip);
        assert_eq!(
            (h.store_calls(), h.cache_calls()),
            before,
            "{algorithm:?} verification must not do I/O"
        );
        // Tokens are scoped by network.
        let other = h.service.verify(Uuid::new_v4(), &vreq(&t.token)).await;
        assert_eq!(other.result.unwrap_err().code, VerifyErrorCode::NotFound);
    }
    let err = h
        .service
        .derive(
            NIL,
            DeriveRequest {
                credential: key.secret.clone(),
                algorithm: TokenAlgorithm::Jwt,
                ttl: None,
                scopes: vec!["admin".into()],
                custom_claims: Default::default(),
                client_ip: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::ScopeNotGranted(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_rotation_keeps_old_keys_and_rehashes_imported() {
    let h = harness(&with_secret(SECRET_A)).await;
    let issued = h.service.issue(NIL, spec("u")).await.unwrap();
    let raw = "sk_live_legacy_0001";
    let imported = h
        .service
        .import(
            NIL,
            ImportRequest {
                raw_key: raw.into(),
                spec: spec("legacy"),
            },
        )
        .await
        .unwrap();
    let old_hash = imported.imported.clone().unwrap();

    // Rotate: B current, A retired.
    h.service
        .reload(&config(
            "",
            &[
                ("TALOS_SECRETS_HMAC_CURRENT", SECRET_B),
                ("TALOS_SECRETS_HMAC_RETIRED", SECRET_A),
            ],
        ))
        .unwrap();
    assert!(
        h.service
            .verify(NIL, &vreq(&issued.secret))
            .await
            .result
            .is_ok()
    );
    assert!(h.service.verify(NIL, &vreq(raw)).await.result.is_ok());
    let row = h
        .service
        .get_key(NIL, KeyKind::Imported, &imported.key_id)
        .await
        .unwrap();
    let new_hash = row.imported.unwrap();
    assert_ne!(
        new_hash.hash, old_hash.hash,
        "verification under a retired secret re-hashes the row"
    );
    assert_ne!(new_hash.secret_id, old_hash.secret_id);
    // Re-importing the same raw key is a duplicate under any configured secret.
    let dup = h
        .service
        .import(
            NIL,
            ImportRequest {
                raw_key: raw.into(),
                spec: spec("legacy"),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, CoreError::AlreadyImported), "{dup:?}");

    // Drop A: the issued key (checksum under A) stops verifying; the re-hashed import keeps working.
    h.service.reload(&with_secret(SECRET_B)).unwrap();
    let out = h.service.verify(NIL, &vreq(&issued.secret)).await;
    assert_eq!(out.result.unwrap_err().code, VerifyErrorCode::NotFound);
    let mut r = vreq(raw);
    r.cache = CacheMode::NoCache;
    assert!(h.service.verify(NIL, &r).await.result.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_secret_fails_clearly_but_reads_still_work() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h.service.issue(NIL, spec("u")).await.unwrap();
    h.service.reload(&config("", &[])).unwrap();
    let out = h.service.verify(NIL, &vreq(&key.secret)).await;
    let err = out.result.unwrap_err();
    assert_eq!(
        (err.code, err.message),
        (
            VerifyErrorCode::NoHmacKey,
            "project has no HMAC key configured"
        )
    );
    assert!(matches!(
        h.service.issue(NIL, spec("u")).await,
        Err(CoreError::NoHmacKey)
    ));
    assert!(
        h.service
            .get_key(NIL, KeyKind::Issued, &key.key.key_id)
            .await
            .is_ok()
    );
    assert_eq!(h.service.ready().await.unwrap_err().dependency, "secrets");
}

/// A database that does not answer makes readiness fail within its 1 s check, naming the
/// database (it used to wait as long as the database did).
#[tokio::test(flavor = "multi_thread")]
async fn readiness_names_a_stalled_database() {
    let h = harness(&with_secret(SECRET_A)).await;
    h.service.ready().await.unwrap();
    h.store.stall_ping.store(true, Ordering::SeqCst);
    let res = tokio::time::timeout(Duration::from_secs(30), h.service.ready())
        .await
        .expect("readiness waited for the stalled database");
    assert_eq!(res.unwrap_err().dependency, "database");
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_and_network_scoping() {
    let h = harness(&with_secret(SECRET_A)).await;
    let other = Uuid::new_v4();
    for _ in 0..5 {
        h.service.issue(NIL, spec("pager")).await.unwrap();
    }
    h.service.issue(other, spec("pager")).await.unwrap();
    let req = |token: Option<String>| ListRequest {
        page_size: 2,
        page_token: token,
        actor_id: Some("pager".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = h
            .service
            .list(NIL, KeyKind::Issued, req(token.clone()))
            .await
            .unwrap();
        seen.extend(page.keys.iter().map(|k| k.key_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = Some(page.next_page_token);
    }
    assert_eq!(seen.len(), 5, "every key of the network exactly once");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "ordered by key_id descending");
    let first = h
        .service
        .list(NIL, KeyKind::Issued, req(None))
        .await
        .unwrap();
    let err = h
        .service
        .list(other, KeyKind::Issued, req(Some(first.next_page_token)))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "page token network mismatch");
    let err = h
        .service
        .list(
            NIL,
            KeyKind::Issued,
            ListRequest {
                status: Some(KeyStatus::Active),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "status filter must be combined with actor_id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_and_batch_import() {
    let h = harness(&config(
        "quota:\n  api_keys_max: 3\n",
        &[("TALOS_SECRETS_HMAC_CURRENT", SECRET_A)],
    ))
    .await;
    h.service.issue(NIL, spec("q")).await.unwrap();
    let items: Vec<ImportRequest> = ["a", "b", "a", "c"]
        .iter()
        .map(|r| ImportRequest {
            raw_key: format!("legacy-{r}"),
            spec: spec("q"),
        })
        .collect();
    let results = h.service.batch_import(NIL, items).await.unwrap();
    let errors: Vec<Option<&CoreError>> = results.iter().map(|r| r.result.as_ref().err()).collect();
    assert!(
        matches!(
            errors[..],
            [
                None,
                None,
                Some(CoreError::DuplicateInBatch { first: 0 }),
                Some(CoreError::QuotaExceeded { .. })
            ]
        ),
        "{errors:?}"
    );
    assert!(errors[2].unwrap().to_string().contains("index 0"));
    let err = h.service.issue(NIL, spec("q")).await.unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::QuotaExceeded {
                limit: 3,
                current: Some(3)
            }
        ),
        "{err:?}"
    );
}

/// 30 concurrent issues and imports against a quota of 5 on a SQLite file (a real pool, so the
/// requests do run concurrently): exactly 5 succeed, the rest are `QuotaExceeded`.
#[tokio::test(flavor = "multi_thread")]
async fn quota_is_exact_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}", dir.path().join("q.db").display());
    talos_storage::migrate_up(&dsn).await.unwrap();
    let store = talos_storage::connect(&dsn, &StoreOptions::default())
        .await
        .unwrap();
    let c = config(
        "quota:\n  api_keys_max: 5\n",
        &[("TALOS_SECRETS_HMAC_CURRENT", SECRET_A)],
    );
    let service = Arc::new(Service::new(&c, store, Arc::new(talos_cache::NoopCache)).unwrap());
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    service.issue(NIL, spec("q")).await.map(|_| ())
                } else {
                    let req = ImportRequest {
                        raw_key: format!("legacy-concurrent-{i}"),
                        spec: spec("q"),
                    };
                    service.import(NIL, req).await.map(|_| ())
                }
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(CoreError::QuotaExceeded { limit: 5, .. }) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(ok, 5, "successful creations under a quota of 5");
    let items: Vec<ImportRequest> = (0..3)
        .map(|i| ImportRequest {
            raw_key: format!("legacy-batch-{i}"),
            spec: spec("q"),
        })
        .collect();
    let results = service.batch_import(NIL, items).await.unwrap();
    assert!(
        results
            .iter()
            .all(|r| matches!(r.result, Err(CoreError::QuotaExceeded { .. })))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_validation_and_idempotency() {
    let h = harness(&with_secret(SECRET_A)).await;
    let mut s = spec("u");
    s.request_id = Some("req-1".into());
    let first = h.service.issue(NIL, s.clone()).await.unwrap();
    let again = h.service.issue(NIL, s).await.unwrap();
    assert_eq!(first.key.key_id, again.key.key_id);
    assert!(
        again.secret.is_empty(),
        "a retried issue never shows the secret again"
    );
    let bad: Vec<(KeySpec, &str)> = vec![
        (
            KeySpec {
                name: String::new(),
                ..spec("u")
            },
            "name",
        ),
        (
            KeySpec {
                actor_id: "a".repeat(256),
                ..spec("u")
            },
            "actor_id",
        ),
        (
            KeySpec {
                scopes: vec![String::new()],
                ..spec("u")
            },
            "scopes",
        ),
        (
            KeySpec {
                ttl: Some("0".into()),
                ..spec("u")
            },
            "ttl",
        ),
        (
            KeySpec {
                ttl: Some("87600h".into()),
                ..spec("u")
            },
            "exceeds",
        ),
        (
            KeySpec {
                allowed_cidrs: Some(vec!["10.0.0.0/33".into()]),
                ..spec("u")
            },
            "allowed_cidrs",
        ),
        (
            KeySpec {
                request_id: Some("x".repeat(37)),
                ..spec("u")
            },
            "request_id",
        ),
    ];
    for (s, want) in bad {
        let err = h.service.issue(NIL, s).await.unwrap_err();
        assert!(matches!(err, CoreError::Invalid(_)), "{err:?}");
        assert!(
            err.to_string().contains(want),
            "{err} should mention {want}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_restriction_fails_closed() {
    let h = harness(&with_secret(SECRET_A)).await;
    let key = h
        .service
        .issue(
            NIL,
            KeySpec {
                allowed_cidrs: Some(vec!["10.0.0.0/8".into()]),
                ..spec("u")
            },
        )
        .await
        .unwrap();
    for (ip, ok) in [
        (Some("10.1.2.3"), true),
        (Some("192.168.0.1"), false),
        (None, false),
    ] {
        let mut r = vreq(&key.secret);
        r.client_ip = ip.map(|i| i.parse().unwrap());
        let out = h.service.verify(NIL, &r).await;
        assert!(out.ip_restricted);
        assert_eq!(out.result.is_ok(), ok, "{ip:?}");
    }
}
