//! Benchmarks of `talos-secrets`: page-token seal/open and keyed MACs.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use talos_secrets::{
    Cursor, KeyEntry, Keyring, RetiredSecret, Secret, open_page_token, seal_page_token,
};
use uuid::Uuid;

fn page_tokens(c: &mut Criterion) {
    let now = chrono::Utc::now();
    let kr = Keyring::new(
        Some(&Secret::new(
            "use-a-random-64-char-hmac-secret-for-api-key-checksum-validation",
        )),
        &[RetiredSecret::new(
            "previous-hmac-secret-rotated-out-on-2026-03-01-padded-to-64chars-",
        )],
        now,
    );
    let nid = Uuid::new_v4();
    let cursor = Cursor {
        last_key_id: Uuid::new_v4().to_string(),
        nid,
    };
    let token = seal_page_token(kr.current().unwrap(), &cursor);
    c.bench_function("page_token/seal", |b| {
        b.iter(|| seal_page_token(kr.current().unwrap(), black_box(&cursor)))
    });
    c.bench_function("page_token/open", |b| {
        b.iter(|| open_page_token(&kr, black_box(&token), nid).unwrap())
    });
    let old = Keyring::from_current(&Secret::new(
        "previous-hmac-secret-rotated-out-on-2026-03-01-padded-to-64chars-",
    ));
    let retired_token = seal_page_token(old.current().unwrap(), &cursor);
    c.bench_function("page_token/open_retired", |b| {
        b.iter(|| open_page_token(&kr, black_box(&retired_token), nid).unwrap())
    });
}

fn macs(c: &mut Criterion) {
    let secret = Secret::new("use-a-random-64-char-hmac-secret-for-api-key-checksum-validation");
    c.bench_function("key_entry/new", |b| {
        b.iter(|| KeyEntry::new(black_box(&secret)))
    });
    let entry = KeyEntry::new(&secret);
    let msg = [0u8; 100];
    c.bench_function("key_entry/mac_100B", |b| {
        b.iter(|| entry.mac(&[black_box(&msg[..])]))
    });
}

criterion_group!(benches, page_tokens, macs);
criterion_main!(benches);
