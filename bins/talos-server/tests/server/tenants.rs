//! Settings that reload with the files: network overlays (each tenant's secret, prefixes and
//! issuer, chosen by `Host`) and the HTTP settings that reload like upstream's (CORS).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use talos_test_support::{TestApp, replace_file};

use super::{SECRET_A, SECRET_B, server};

const ALPHA: &str = "00000000-0000-0000-0000-0000000000a1";
const BETA: &str = "00000000-0000-0000-0000-0000000000b2";

fn overlay(dir: &Path, name: &str, prefix: &str, secret: &str) {
    replace_file(
        &dir.join(format!("{name}.yaml")),
        &format!(
            "credentials:\n  issuer: \"http://{name}.test\"\n  api_keys:\n    prefix: {{ current: {prefix} }}\nsecrets:\n  hmac:\n    current: \"{secret}\"\n"
        ),
    );
}

/// `POST path` for the network of `host`.
async fn post(s: &TestApp, host: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}{path}", s.url))
        .header("host", host)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn issue(s: &TestApp, host: &str) -> String {
    let j = post(
        s,
        host,
        "/v2alpha1/admin/issuedApiKeys",
        json!({"name": "n", "actor_id": "a"}),
    )
    .await;
    j["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{j}"))
        .to_string()
}

async fn verify(s: &TestApp, host: &str, credential: &str) -> Value {
    post(
        s,
        host,
        "/v2alpha1/admin/apiKeys:verify",
        json!({ "credential": credential }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_have_their_own_secrets_and_their_overlays_reload() {
    let dir = tempfile::tempdir().unwrap();
    overlay(dir.path(), "alpha", "alpha", SECRET_A);
    overlay(dir.path(), "beta", "beta", SECRET_B);
    let mut s = server()
        .dir(dir.path())
        .config_file(&format!(
            "credentials:\n  issuer: \"http://main.test\"\n  api_keys: {{ default_ttl: \"1h\" }}\ndb:\n  dsn: \"sqlite://talos.db\"\nmultitenancy:\n  enabled: true\n  networks:\n    - {{ hostname: alpha.test, id: \"{ALPHA}\", config_path: alpha.yaml }}\n    - {{ hostname: beta.test, id: \"{BETA}\", config_path: beta.yaml }}\n"
        ))
        .spawn();
    let a = issue(&s, "alpha.test").await;
    let b = issue(&s, "beta.test").await;
    assert!(
        a.starts_with("alpha_v1_") && b.starts_with("beta_v1_"),
        "{a} {b}"
    );
    let ok = verify(&s, "alpha.test", &a).await;
    assert_eq!(
        (&ok["is_valid"], &ok["issuer"]),
        (&json!(true), &json!("http://alpha.test"))
    );
    for (host, key) in [("beta.test", &a), ("alpha.test", &b)] {
        let j = verify(&s, host, key).await;
        assert_eq!(j["is_valid"], false, "{key} on {host}: {j}");
    }

    // The overlay file is watched: a new prefix for beta, alpha unchanged.
    overlay(dir.path(), "beta", "gamma", SECRET_B);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !issue(&s, "beta.test").await.starts_with("gamma_v1_") {
        assert!(
            Instant::now() < deadline,
            "the overlay change was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(issue(&s, "alpha.test").await.starts_with("alpha_v1_"));
    let j = verify(&s, "beta.test", &b).await;
    assert_eq!(
        (&j["is_valid"], &j["error_message"]),
        (&json!(false), &json!("prefix not allowed")),
        "beta's old prefix is not retired in its new overlay: {j}"
    );

    // A broken overlay keeps beta's settings.
    replace_file(&dir.path().join("beta.yaml"), "credentials: [broken\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(issue(&s, "beta.test").await.starts_with("gamma_v1_"));
    assert!(s.terminate().success());
    let stderr = s.log();
    assert!(
        stderr.contains("beta.yaml") && stderr.contains("keeping its previous settings"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_reloads_with_the_file_and_debug_logs_its_decisions() {
    let base = super::config(SECRET_A, &[]);
    let mut s = server().config_file(&base).spawn();
    let from_app = || async {
        reqwest::Client::new()
            .get(format!("{}/v2alpha1/admin/issuedApiKeys", s.url))
            .header("origin", "https://app.example.com")
            .send()
            .await
            .unwrap()
    };
    assert_eq!(from_app().await.status().as_u16(), 403, "CORS is off");
    s.write_config(
        &format!(
            "{base}serve:\n  http:\n    cors: {{ enabled: true, debug: true, allowed_origins: [\"https://app.example.com\"] }}\n"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let granted = loop {
        let r = from_app().await;
        if r.status().as_u16() == 200 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the CORS change was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        granted.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(s.terminate().success());
    let stderr = s.log();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("talos::cors") && l.contains("https://app.example.com")),
        "cors.debug logs each decision:\n{stderr}"
    );
    assert!(
        stderr.contains("rate_limit.enabled is false"),
        "one startup line says rate limits are not enforced:\n{stderr}"
    );
}
