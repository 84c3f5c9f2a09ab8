//! Network overlays (`multitenancy.networks[].config_path`): each tenant with its own secret,
//! prefixes and issuer; reloaded with the configuration; a broken overlay keeps its network's
//! previous settings on reload and stops a start.

use std::path::Path;
use std::sync::Arc;

use talos_core::config::Config;
use talos_core::*;
use uuid::Uuid;

use super::{config, spec, vreq};

const ALPHA: Uuid = Uuid::from_u128(0xa1);
const BETA: Uuid = Uuid::from_u128(0xb2);

fn overlay(prefix: &str, secret: &str, issuer: &str) -> String {
    format!(
        "credentials:\n  issuer: \"{issuer}\"\n  api_keys:\n    prefix: {{ current: {prefix} }}\nsecrets:\n  hmac:\n    current: \"{secret}\"\n"
    )
}

fn tenants(dir: &Path) -> Config {
    let networks = format!(
        r#"[{{"hostname":"alpha.test","id":"{ALPHA}","config_path":{:?}}},{{"hostname":"beta.test","id":"{BETA}","config_path":{:?}}}]"#,
        dir.join("alpha.yaml"),
        dir.join("beta.yaml")
    );
    config(
        "",
        &[
            ("TALOS_MULTITENANCY_ENABLED", "true"),
            ("TALOS_MULTITENANCY_NETWORKS", &networks),
        ],
    )
}

async fn service(c: &Config) -> Result<Service, CoreError> {
    let store = talos_storage::connect("sqlite::memory:", &Default::default())
        .await
        .unwrap();
    Service::new(c, store, Arc::new(talos_cache::NoopCache))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_network_has_its_own_secret_prefix_and_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let (a_secret, b_secret) = (
        "alpha-secret-0123456789abcdefghijklmnopqr",
        "beta-secret-0123456789abcdefghijklmnopqrs",
    );
    std::fs::write(
        dir.path().join("alpha.yaml"),
        overlay("alpha", a_secret, "http://alpha.test"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("beta.yaml"),
        overlay("beta", b_secret, "http://beta.test"),
    )
    .unwrap();
    let c = tenants(dir.path());
    let s = service(&c).await.unwrap();
    assert!(s.has_current_secret());
    let a = s.issue(ALPHA, spec("u")).await.unwrap();
    let b = s.issue(BETA, spec("u")).await.unwrap();
    assert!(a.secret.starts_with("alpha_v1_"), "{}", a.secret);
    assert!(b.secret.starts_with("beta_v1_"), "{}", b.secret);
    assert!(s.verify(ALPHA, &vreq(&a.secret)).await.result.is_ok());
    assert!(s.verify(BETA, &vreq(&b.secret)).await.result.is_ok());
    assert_eq!(
        (&*s.issuer(ALPHA), &*s.issuer(BETA)),
        ("http://alpha.test", "http://beta.test")
    );
    // A key of one network does not verify on the other: neither its prefix nor its checksum
    // (another secret) is accepted there.
    for (nid, cred) in [(BETA, &a.secret), (ALPHA, &b.secret)] {
        let err = s.verify(nid, &vreq(cred)).await.result.unwrap_err();
        assert_eq!(err.code, VerifyErrorCode::NotFound, "{cred} on {nid}");
    }
    // Even with the other network's prefix allowed, the secret differs.
    std::fs::write(
        dir.path().join("beta.yaml"),
        overlay("beta", b_secret, "http://beta.test")
            .replace("{ current: beta }", "{ current: beta, retired: [alpha] }"),
    )
    .unwrap();
    assert!(s.reload(&c).unwrap().is_empty());
    let err = s.verify(BETA, &vreq(&a.secret)).await.result.unwrap_err();
    assert_eq!(err.code, VerifyErrorCode::NotFound);

    // Reload: a changed overlay applies to its network only.
    std::fs::write(
        dir.path().join("beta.yaml"),
        overlay("gamma", b_secret, "http://beta.test"),
    )
    .unwrap();
    assert!(s.reload(&c).unwrap().is_empty());
    assert!(
        s.issue(BETA, spec("u"))
            .await
            .unwrap()
            .secret
            .starts_with("gamma_v1_")
    );
    assert!(
        s.issue(ALPHA, spec("u"))
            .await
            .unwrap()
            .secret
            .starts_with("alpha_v1_")
    );

    // A broken overlay keeps its network's settings and says why; the others still reload.
    std::fs::write(
        dir.path().join("beta.yaml"),
        "credentials: [not a mapping\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("alpha.yaml"),
        overlay("delta", a_secret, "http://alpha.test"),
    )
    .unwrap();
    let warnings = s.reload(&c).unwrap();
    assert!(
        warnings.len() == 1 && warnings[0].contains("beta.yaml"),
        "{warnings:?}"
    );
    assert!(
        s.issue(BETA, spec("u"))
            .await
            .unwrap()
            .secret
            .starts_with("gamma_v1_")
    );
    assert!(
        s.issue(ALPHA, spec("u"))
            .await
            .unwrap()
            .secret
            .starts_with("delta_v1_")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_broken_overlay_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("alpha.yaml"),
        overlay(
            "alpha",
            "alpha-secret-0123456789abcdefghijklmnopqr",
            "http://a",
        ),
    )
    .unwrap();
    let c = tenants(dir.path());
    let err = service(&c)
        .await
        .err()
        .expect("beta.yaml is missing")
        .to_string();
    assert!(err.contains("beta.yaml"), "{err}");
    std::fs::write(
        dir.path().join("beta.yaml"),
        "db: { dsn: \"sqlite::memory:\" }\n",
    )
    .unwrap();
    let err = service(&c)
        .await
        .err()
        .expect("db is not overlayable")
        .to_string();
    assert!(err.contains("beta.yaml") && err.contains("db"), "{err}");
}
