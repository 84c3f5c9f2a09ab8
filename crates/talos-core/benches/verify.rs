//! In-process verification on a cache hit (`Service::verify`, SQLite in memory, memory cache),
//! beside the cost of one HMAC-SHA256 of the same credential with the same secret: the floor
//! of any verification, since the checksum has to be recomputed.
//!
//! `cargo bench -p talos-core --bench verify`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use talos_core::config::load_str;
use talos_core::{CacheStatus, KeySpec, Service, VerifyRequest};
use uuid::Uuid;

const SECRET: &str = "preview-hmac-secret-minimum-32-chars-long";

fn service(rt: &tokio::runtime::Runtime) -> (Service, String) {
    let yaml = format!(
        "db:\n  dsn: \"sqlite::memory:\"\ncache:\n  type: memory\nsecrets:\n  hmac:\n    current: \"{SECRET}\"\n\
         credentials:\n  issuer: \"http://talos.bench\"\n  api_keys:\n    default_ttl: \"720h\"\n"
    );
    let (config, _) = load_str(&yaml, "bench.yaml", &BTreeMap::new()).expect("bench config");
    rt.block_on(async {
        let svc = Service::from_config(&config).await.expect("service");
        let spec = KeySpec {
            name: "bench".into(),
            actor_id: "bench-user".into(),
            scopes: vec!["read".into()],
            ..Default::default()
        };
        let issued = svc.issue(Uuid::nil(), spec).await.expect("issue");
        (svc, issued.secret.to_string())
    })
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (svc, credential) = service(&rt);
    let nid = Uuid::nil();
    let req = VerifyRequest {
        credential: credential.clone(),
        ..Default::default()
    };
    // Warm the cache (and the once-a-day last-used write), then make sure it hits.
    rt.block_on(async {
        let first = svc.verify(nid, &req).await;
        assert!(first.result.is_ok(), "{:?}", first.result);
        let second = svc.verify(nid, &req).await;
        assert!(second.result.is_ok());
        assert_eq!(second.cache, CacheStatus::Hit);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    });

    let mut group = c.benchmark_group("verify");
    group.bench_function("cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(svc.verify(nid, black_box(&req)).await) })
    });
    // The same key with one checksum character changed: parse + HMAC, no cache lookup.
    let mut forged = credential.clone().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'2' { b'3' } else { b'2' };
    let forged = VerifyRequest {
        credential: String::from_utf8(forged).expect("ascii"),
        ..Default::default()
    };
    rt.block_on(async {
        let out = svc.verify(nid, &forged).await;
        assert!(out.result.is_err());
        assert_eq!(out.cache, CacheStatus::Skip);
    });
    group.bench_function("forged", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(svc.verify(nid, black_box(&forged)).await) })
    });
    group.finish();

    let mut group = c.benchmark_group("hmac_sha256");
    let bytes = credential.as_bytes();
    // One complete HMAC: key schedule, then the credential.
    group.bench_function("credential", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(black_box(SECRET.as_bytes()))
                .expect("any key length");
            mac.update(black_box(bytes));
            black_box(mac.finalize().into_bytes())
        })
    });
    // With the keyed state precomputed, as the keyring holds it.
    let keyed = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    group.bench_function("credential_prekeyed", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(black_box(bytes));
            black_box(mac.finalize().into_bytes())
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
