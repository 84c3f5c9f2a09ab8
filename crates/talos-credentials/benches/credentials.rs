//! Benchmarks of `talos-credentials`: issued-key checksum verification, imported-key hashing, JWT sign and
//! verify, macaroon derive and verify, credential routing.

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use talos_credentials::jwt::{Jwks, generate_eddsa_jwk};
use talos_credentials::macaroon::{derive_macaroon, verify_macaroon};
use talos_credentials::{DerivedClaims, Visibility, classify, imported, issued};
use talos_secrets::{Keyring, RetiredSecret, Secret};
use uuid::Uuid;

const CURRENT: &str = "use-a-random-64-char-hmac-secret-for-api-key-checksum-validation";
const RETIRED: &str = "previous-hmac-secret-rotated-out-on-2026-03-01-padded-to-64chars-";

fn keyring() -> Keyring {
    Keyring::new(
        Some(&Secret::new(CURRENT)),
        &[RetiredSecret::new(RETIRED)],
        Utc::now(),
    )
}

fn claims() -> DerivedClaims {
    DerivedClaims {
        jti: Uuid::new_v4().to_string(),
        sub: Uuid::new_v4().to_string(),
        iss: "http://localhost:8080".into(),
        iat: 1_767_225_600,
        nbf: 1_767_225_600,
        exp: 1_767_229_200,
        act: "user-1".into(),
        nid: Uuid::nil(),
        scp: vec!["read".into(), "write".into()],
        meta: json!({"team": "a"}).as_object().unwrap().clone(),
        vis: Visibility::Secret,
        acl: vec![],
        custom: json!({"role": "preview-user"}).as_object().unwrap().clone(),
    }
}

fn issued_keys(c: &mut Criterion) {
    let kr = keyring();
    let key = issued::generate(
        kr.current().unwrap(),
        "talos",
        1_767_225_600,
        Uuid::new_v4(),
    );
    let parsed = issued::parse(&key).unwrap();
    c.bench_function("issued/generate", |b| {
        b.iter(|| {
            issued::generate(
                kr.current().unwrap(),
                "talos",
                black_box(1_767_225_600),
                Uuid::nil(),
            )
        })
    });
    c.bench_function("issued/parse", |b| {
        b.iter(|| issued::parse(black_box(&key)).unwrap())
    });
    c.bench_function("issued/verify_checksum", |b| {
        b.iter(|| issued::verify_checksum(black_box(&parsed), &kr).unwrap())
    });
    c.bench_function("issued/parse_and_verify", |b| {
        b.iter(|| {
            let p = issued::parse(black_box(&key)).unwrap();
            issued::verify_checksum(&p, &kr).unwrap().id().len()
        })
    });
    let old = Keyring::from_current(&Secret::new(RETIRED));
    let retired_key = issued::generate(
        old.current().unwrap(),
        "talos",
        1_767_225_600,
        Uuid::new_v4(),
    );
    c.bench_function("issued/parse_and_verify_retired", |b| {
        b.iter(|| {
            let p = issued::parse(black_box(&retired_key)).unwrap();
            issued::verify_checksum(&p, &kr).unwrap().id().len()
        })
    });
    c.bench_function("route/classify_issued", |b| {
        b.iter(|| classify(black_box(&key), &["talos"], &["mc"]).is_imported())
    });
}

fn imported_keys(c: &mut Criterion) {
    let kr = keyring();
    let nid = Uuid::new_v4();
    let raw = b"sk_live_51H8xXbC4mPq2a9ZrT6yWvKdN3eLfGhJkMnOpQrStUvWxYz";
    c.bench_function("imported/hash", |b| {
        b.iter(|| imported::hash(kr.current().unwrap(), nid, black_box(raw)))
    });
    c.bench_function("imported/hash_all_2_secrets", |b| {
        b.iter(|| imported::hash_all(&kr, nid, black_box(raw)).len())
    });
}

fn jwt(c: &mut Criterion) {
    let jwks = Jwks::from_json(generate_eddsa_jwk("bench").to_string().as_bytes()).unwrap();
    let key = jwks.signing_key(None).unwrap();
    let claims = claims();
    let token = jwks.sign(key, &claims).unwrap();
    c.bench_function("jwt/sign", |b| {
        b.iter(|| jwks.sign(key, black_box(&claims)).unwrap())
    });
    c.bench_function("jwt/verify", |b| {
        b.iter(|| jwks.verify(black_box(&token)).unwrap())
    });
}

fn macaroons(c: &mut Criterion) {
    let kr = keyring();
    let claims = claims();
    let token = derive_macaroon(kr.current().unwrap(), "mc", &claims);
    c.bench_function("macaroon/derive", |b| {
        b.iter(|| derive_macaroon(kr.current().unwrap(), "mc", black_box(&claims)))
    });
    c.bench_function("macaroon/verify", |b| {
        b.iter(|| verify_macaroon(&kr, black_box(&token), &["mc"]).unwrap())
    });
    let old = Keyring::from_current(&Secret::new(RETIRED));
    let retired = derive_macaroon(old.current().unwrap(), "mc", &claims);
    c.bench_function("macaroon/verify_retired", |b| {
        b.iter(|| verify_macaroon(&kr, black_box(&retired), &["mc"]).unwrap())
    });
}

criterion_group!(benches, issued_keys, imported_keys, jwt, macaroons);
criterion_main!(benches);
