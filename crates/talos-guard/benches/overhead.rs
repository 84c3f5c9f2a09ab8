//! The guard's overhead per request: the same trivial handler unguarded and behind the tower
//! layer on the in-process backend, the key in the memory cache (the steady state of a busy
//! service). `cargo bench -p talos-guard`; figures in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use talos_core::{KeySpec, Service};
use talos_guard::Guard;
use tower::{Layer, ServiceExt, service_fn};
use uuid::Uuid;

async fn handler(_: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fn request(secret: &str) -> Request<()> {
    Request::builder()
        .uri("/invoices")
        .header("authorization", format!("Bearer {secret}"))
        .body(())
        .unwrap()
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (guard, secret) = rt.block_on(async {
        let dsn = format!("sqlite://{}", dir.path().join("bench.db").display());
        talos_storage::migrate_up(&dsn).await.unwrap();
        let yaml = format!(
            "credentials:\n  issuer: \"http://talos.test\"\n  api_keys:\n    default_ttl: \"720h\"\n\
             secrets:\n  hmac:\n    current: \"{}\"\ndb:\n  dsn: \"{dsn}\"\ncache:\n  type: memory\n",
            talos_test_support::TEST_SECRET
        );
        let (config, _) = talos_core::config::load_str(&yaml, "b.yaml", &BTreeMap::new()).unwrap();
        let service = Arc::new(Service::from_config(&config).await.unwrap());
        let key = service
            .issue(
                Uuid::nil(),
                KeySpec {
                    name: "bench".into(),
                    actor_id: "bench".into(),
                    scopes: vec!["invoices:read".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (Guard::embedded(service), key.secret)
    });
    let guarded = guard.require(["invoices:read"]);
    let guarded = guarded.layer(service_fn(handler));
    // Warm the cache, and check the guard lets the key through.
    let status = rt
        .block_on(guarded.clone().oneshot(request(&secret)))
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let mut g = c.benchmark_group("guard");
    g.bench_function("unguarded", |b| {
        b.to_async(&rt)
            .iter(|| service_fn(handler).oneshot(request(&secret)))
    });
    g.bench_function("guarded_cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| guarded.clone().oneshot(request(&secret)))
    });
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
