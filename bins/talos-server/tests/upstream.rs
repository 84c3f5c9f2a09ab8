//! Upstream's operational surface on the real binary (issue 17): `migrate down|force` and the
//! `DB_DSN`/`DSN` fallbacks, the refusal of signing keys the server cannot use, upstream's domain
//! metrics on `/metrics` and `/metrics/prometheus`, and 499 for an abandoned request.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_talos-server");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `talos-server ARGS` with `env` and none of the DSN variables of the caller.
fn server(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TALOS_DB_DSN")
        .env_remove("DB_DSN")
        .env_remove("DSN")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "talos-server failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn migrate_down_force_and_dsn_fallbacks() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}", dir.path().join("t.db").display());
    let other = format!("sqlite://{}", dir.path().join("other.db").display());
    // DB_DSN, then DSN, after TALOS_DB_DSN.
    assert!(stdout(&server(&["migrate", "up"], &[("DB_DSN", &dsn)])).contains("applied"));
    let status = stdout(&server(&["migrate", "status"], &[("DSN", &dsn)]));
    assert!(!status.contains("pending"), "{status}");
    let status = stdout(&server(
        &["migrate", "status"],
        &[("TALOS_DB_DSN", &dsn), ("DB_DSN", &other), ("DSN", &other)],
    ));
    assert!(!status.contains("pending"), "TALOS_DB_DSN wins: {status}");
    let status = stdout(&server(
        &["migrate", "status"],
        &[("DB_DSN", &dsn), ("DSN", &other)],
    ));
    assert!(!status.contains("pending"), "DB_DSN before DSN: {status}");
    let status = stdout(&server(
        &["migrate", "status", "--database", &other],
        &[("DB_DSN", &dsn)],
    ));
    assert!(!status.contains("applied"), "--database wins: {status}");

    let names: Vec<String> = stdout(&server(&["migrate", "status", "--database", &dsn], &[]))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    assert!(names.len() >= 2, "{names:?}");
    let newest = names.last().unwrap();
    let out = stdout(&server(&["migrate", "down", "--database", &dsn], &[]));
    assert_eq!(
        out.trim(),
        format!("reverted {newest}"),
        "one step by default"
    );
    let out = stdout(&server(
        &["migrate", "down", "--steps", "9", "--database", &dsn],
        &[],
    ));
    assert_eq!(out.lines().count(), names.len() - 1, "{out}");
    assert!(
        stdout(&server(&["migrate", "down", "--database", &dsn], &[]))
            .contains("no migration is applied")
    );

    let first_version = names[0].split('_').next().unwrap();
    let out = stdout(&server(
        &["migrate", "force", first_version, "--database", &dsn],
        &[],
    ));
    assert!(
        out.contains("none was run") && out.contains(&names[0]),
        "{out}"
    );
    let status = stdout(&server(&["migrate", "status", "--database", &dsn], &[]));
    assert!(
        status.starts_with(&format!("applied {}", names[0])),
        "{status}"
    );
    assert!(status.contains(&format!("pending {newest}")), "{status}");
    let bad = server(&["migrate", "force", "17", "--database", &dsn], &[]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown migration version") && err.contains(newest),
        "{err}"
    );
    for bad in [
        &["migrate", "down", "--steps", "0"][..],
        &["migrate", "force"],
    ] {
        let out = server(bad, &[("DB_DSN", &dsn)]);
        assert_eq!(out.status.code(), Some(2), "{bad:?} is a usage error");
    }
}

fn config(dir: &std::path::Path, jwks: &Value) -> std::path::PathBuf {
    let url = format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(jwks.to_string())
    );
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "credentials:\n  issuer: \"http://t\"\n  derived_tokens:\n    jwt:\n      signing_keys:\n        urls: [\"{url}\"]\n\
             secrets:\n  hmac:\n    current: \"upstream-test-secret-0123456789abcdefghij\"\n\
             db:\n  dsn: \"sqlite://{}\"\n",
            dir.join("t.db").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_signing_key_the_server_cannot_use_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = json!({"keys": [{"kty": "RSA", "alg": "RS256", "kid": "rsa-1", "use": "sig",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc", "e": "AQAB"}]});
    let path = config(dir.path(), &rsa);
    let out = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("TALOS_SERVE_HTTP_PORT", free_port().to_string())
        .env("TALOS_SERVE_METRICS_PORT", free_port().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "startup must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "credentials.derived_tokens.jwt.signing_keys.urls[0]",
        r#"kty "RSA""#,
        r#"kid "rsa-1""#,
        "EdDSA",
        "talos jwk generate eddsa",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
}

struct Running {
    child: Child,
    url: String,
    metrics: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(dir: &std::path::Path) -> Running {
        let (port, metrics_port) = (free_port(), free_port());
        let child = Command::new(BIN)
            .args(["serve", "--dev"])
            .current_dir(dir)
            .env("TALOS_SERVE_HTTP_PORT", port.to_string())
            .env("TALOS_SERVE_METRICS_PORT", metrics_port.to_string())
            .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = Running {
            child,
            url: format!("http://127.0.0.1:{port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http::blocking_get(&format!("{}/health/alive", r.metrics)).is_none() {
            assert!(Instant::now() < deadline, "talos-server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }
}

/// The tiny blocking HTTP the metrics checks need, over reqwest's async client.
mod http {
    pub fn blocking_get(url: &str) -> Option<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = ::reqwest::get(url).await.ok()?;
            r.status().is_success().then_some(())?;
            r.text().await.ok()
        })
    }

    pub fn post(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = ::reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(serde_json::Value::Null))
        })
    }
}

/// The value of the series whose line holds every one of `parts`.
fn series(text: &str, name: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn upstreams_domain_metrics_and_499() {
    let dir = tempfile::tempdir().unwrap();
    let s = Running::start(dir.path());
    let a = format!("{}/v2alpha1/admin", s.url);
    let (status, issued) = http::post(
        &format!("{a}/issuedApiKeys"),
        json!({"name": "m", "actor_id": "u1", "scopes": ["read"]}),
    );
    assert_eq!(status, 201, "{issued}");
    let secret = issued["secret"].as_str().unwrap();
    let key_id = issued["issued_api_key"]["key_id"].as_str().unwrap();
    for _ in 0..2 {
        let (_, v) = http::post(
            &format!("{a}/apiKeys:verify"),
            json!({"credential": secret}),
        );
        assert_eq!(v["is_valid"], true, "{v}");
    }
    http::post(
        &format!("{a}/apiKeys:verify"),
        json!({"credential": "sk_nope"}),
    );
    let (_, d) = http::post(
        &format!("{a}/apiKeys:derive"),
        json!({"credential": secret, "algorithm": "TOKEN_ALGORITHM_JWT"}),
    );
    let jwt = d["token"]["token"].as_str().unwrap();
    http::post(&format!("{a}/apiKeys:verify"), json!({"credential": jwt}));
    http::post(
        &format!("{a}/importedApiKeys:batchCreate"),
        json!({"requests": [
            {"raw_key": "sk_metrics_1", "name": "i", "actor_id": "u1", "ttl": "1h"},
            {"raw_key": "sk_metrics_1", "name": "i", "actor_id": "u1", "ttl": "1h"}
        ]}),
    );
    let (status, _) = http::post(
        &format!("{a}/issuedApiKeys/{key_id}:revoke"),
        json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
    );
    assert_eq!(status, 204);

    // A client that promises a body and goes away: counted as 499 on the verify route.
    let mut c = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    c.write_all(
        b"POST /v2alpha1/admin/apiKeys:verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"credential\":",
    )
    .unwrap();
    drop(c);

    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = http::blocking_get(&format!("{}/metrics/prometheus", s.metrics)).unwrap();
        if series(&text, "http_requests_total", &["code=\"499\""]).is_some() {
            break text;
        }
        assert!(Instant::now() < deadline, "no 499 counted:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains(r#"route="/v2alpha1/admin/apiKeys:verify""#));
    let want: &[(&str, &[&str], f64)] = &[
        (
            "talos_verifications_total",
            &["type=\"issued\"", "result=\"success\""],
            2.0,
        ),
        (
            "talos_verifications_total",
            &["type=\"imported\"", "result=\"failure\""],
            1.0,
        ),
        (
            "talos_verifications_total",
            &["type=\"jwt\"", "result=\"success\""],
            1.0,
        ),
        ("talos_keys_created_total", &[], 2.0),
        (
            "talos_keys_revoked_total",
            &["reason=\"key_compromise\""],
            1.0,
        ),
        ("talos_tokens_minted_total", &[], 1.0),
        ("talos_cache_hits_total", &[], 1.0),
        ("talos_batch_import_requests_total", &[], 1.0),
        ("talos_batch_import_partial_failures_total", &[], 1.0),
        ("talos_batch_import_keys_succeeded_total", &[], 1.0),
        (
            "talos_batch_import_keys_failed_total",
            &["error_code=\"ALREADY_EXISTS\""],
            1.0,
        ),
        ("talos_keyservice_load_total", &["result=\"success\""], 1.0),
        ("talos_keyservice_keys_loaded", &[], 1.0),
        ("talos_verify_total", &["result=\"valid\""], 3.0),
    ];
    for (name, labels, value) in want {
        assert_eq!(
            series(&text, name, labels),
            Some(*value),
            "{name}{labels:?} in:\n{text}"
        );
    }
    for histogram in [
        "# TYPE talos_verification_duration_seconds histogram",
        "# TYPE talos_batch_import_key_count histogram",
        "# TYPE talos_keyservice_load_duration_seconds histogram",
        "# TYPE talos_keyservice_keys_loaded gauge",
        "# TYPE talos_verifications_total counter",
    ] {
        assert!(text.contains(histogram), "{histogram} in:\n{text}");
    }
    assert!(
        series(
            &text,
            "talos_verification_duration_seconds_bucket",
            &["type=\"issued\"", "cache_hit=\"hit\"", "le=\"+Inf\""]
        ) == Some(1.0),
        "{text}"
    );
    let plain = http::blocking_get(&format!("{}/metrics", s.metrics)).unwrap();
    assert!(
        plain.contains("talos_verifications_total"),
        "the alias serves the same document"
    );
}
