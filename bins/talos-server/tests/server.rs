//! The real `talos-server` binary: dev mode, graceful shutdown, config reload, startup errors.

#[path = "server/planes.rs"]
mod planes;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_talos-server");
const SECRET_A: &str = "server-test-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SECRET_B: &str = "server-test-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ADMIN_TOKEN: &str = "talos_admin_server_test_token_0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// Built-in TLS has its own file to keep modules small; it is part of this one test binary.
#[path = "server/tls.rs"]
mod tls;

struct Server {
    child: Child,
    url: String,
    metrics_url: String,
    /// Admin token sent on every request, when set.
    token: Option<String>,
    /// Client of the API port (trusts the test CA when the server serves HTTPS).
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path, args: &[&str]) -> Server {
        Server::start_with(dir, args, &[], None)
    }

    /// With extra environment variables and, for HTTPS, the PEM root that the client trusts.
    fn start_with(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        ca_pem: Option<&[u8]>,
    ) -> Server {
        let port = free_port();
        let metrics_port = free_port();
        let http = match ca_pem {
            Some(pem) => reqwest::Client::builder()
                .tls_certs_only(reqwest::Certificate::from_pem_bundle(pem).unwrap())
                .build()
                .unwrap(),
            None => reqwest::Client::new(),
        };
        let scheme = if ca_pem.is_some() { "https" } else { "http" };
        let child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
            .env("TALOS_SERVE_HTTP_PORT", port.to_string())
            .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
            .env("TALOS_SERVE_METRICS_PORT", metrics_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("talos-server starts");
        Server {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            metrics_url: format!("http://127.0.0.1:{metrics_port}"),
            token: None,
            http,
        }
    }

    async fn wait_alive(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).ok();
                panic!("talos-server exited with {status}: {err}");
            }
            if self
                .http
                .get(format!("{}/health/alive", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("talos-server did not become alive");
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn issue(&self) -> String {
        let (s, j) = self
            .post(
                "/v2alpha1/admin/issuedApiKeys",
                json!({"name": "n", "actor_id": "a", "ttl": "1h"}),
            )
            .await;
        assert_eq!(s, 201, "{j}");
        j["secret"].as_str().unwrap().to_string()
    }

    async fn is_valid(&self, credential: &str) -> bool {
        let (_, j) = self
            .post(
                "/v2alpha1/admin/apiKeys:verify",
                json!({"credential": credential}),
            )
            .await;
        j["is_valid"] == json!(true)
    }

    /// SIGTERM, then the exit status within 10 s.
    fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "talos-server did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_mode_persists_its_secret_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &["serve", "--dev"]);
    s.wait_alive().await;
    let secret = s.issue().await;
    assert!(s.is_valid(&secret).await);
    assert!(dir.path().join("talos-dev.db").exists());
    let secrets = dir.path().join("talos-dev.secrets.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [
            "talos-dev.secrets.json",
            "talos-dev.db",
            "talos-dev.db-wal",
            "talos-dev.db-shm",
        ] {
            let p = dir.path().join(f);
            if (f.ends_with("-wal") || f.ends_with("-shm")) && !p.exists() {
                continue;
            }
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{f} is owner-only"
            );
        }
    }
    let jwks = reqwest::get(format!("{}/v2alpha1/derivedKeys/jwks.json", s.url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "talos-dev");
    let metrics = reqwest::get(format!("{}/metrics", s.metrics_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "talos_build_info",
        "talos_cache_lookups_total",
        "talos_db_pool_size",
        "talos_db_pool_wait_seconds",
        "talos_verify_total{result=\"valid\"}",
    ] {
        assert!(
            metrics.contains(want),
            "{want} missing from /metrics:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(r#"route="/v2alpha1/admin/apiKeys:verify""#),
        "routes are labelled by pattern"
    );
    let ready = reqwest::get(format!("{}/health/ready", s.metrics_url))
        .await
        .unwrap();
    assert_eq!(
        ready.status().as_u16(),
        200,
        "health is served on the metrics port too"
    );
    assert!(s.terminate().success(), "graceful shutdown exits 0");

    // Restarted, it reuses the same secret and database: the key still verifies.
    let mut s = Server::start(dir.path(), &["serve", "--dev"]);
    s.wait_alive().await;
    assert!(s.is_valid(&secret).await);
    let stderr = {
        s.terminate();
        let mut err = String::new();
        std::io::Read::read_to_string(s.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        err
    };
    assert!(
        stderr.contains("DEVELOPMENT SETUP"),
        "dev mode says so loudly"
    );
    let written = std::fs::read_to_string(&secrets).unwrap();
    let hmac = serde_json::from_str::<Value>(&written).unwrap()["hmac_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!stderr.contains(&hmac), "the secret never reaches the log");
    assert!(!stderr.contains(&secret), "issued keys never reach the log");
}

fn write_config(path: &Path, body: &str) {
    // Write then rename, like an operator's atomic config update.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(current: &str, retired: &[&str]) -> String {
    let retired: Vec<String> = retired.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        "credentials:\n  issuer: \"http://reload.test\"\n  api_keys: {{ default_ttl: \"1h\" }}\nsecrets:\n  hmac:\n    current: \"{current}\"\n    retired: [{}]\ndb:\n  dsn: \"sqlite://talos.db\"\n",
        retired.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reload_atomically_and_a_broken_file_keeps_the_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    write_config(&cfg, &config(SECRET_A, &[]));
    let mut s = Server::start(dir.path(), &["serve", "--config", cfg.to_str().unwrap()]);
    s.wait_alive().await;
    let old = s.issue().await;

    write_config(&cfg, &config(SECRET_B, &[SECRET_A]));
    let only_b = talos_secrets::Keyring::new(
        Some(&talos_secrets::Secret::new(SECRET_B)),
        &[],
        chrono::Utc::now(),
    );
    let signed_by_b = |key: &str| {
        talos_credentials::issued::parse(key)
            .and_then(|p| talos_credentials::issued::verify_checksum(&p, &only_b))
            .is_some()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        let key = s.issue().await;
        if signed_by_b(&key) {
            break key;
        }
        assert!(Instant::now() < deadline, "reload not picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        s.is_valid(&new).await && s.is_valid(&old).await,
        "both the new and the retired secret verify"
    );

    write_config(&cfg, "secrets: [this is: not valid");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        s.is_valid(&new).await,
        "a broken file keeps the previous configuration"
    );
    assert!(s.is_valid(&old).await);

    write_config(&cfg, &config(SECRET_B, &[]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.is_valid(&old).await {
        assert!(
            Instant::now() < deadline,
            "dropping the retired secret was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s.is_valid(&new).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_tokens_reload_with_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let with_token = |token: &str| {
        format!(
            "{}serve:\n  http:\n    admin_auth:\n      tokens:\n        - {{ name: \"t\", sha256: \"{}\", scopes: [\"keys:write\"] }}\n",
            config(SECRET_A, &[]),
            talos_core::admin_auth::token_digest(token)
        )
    };
    write_config(&cfg, &with_token("talos_admin_first"));
    let mut s = Server::start(dir.path(), &["serve", "--config", cfg.to_str().unwrap()]);
    s.wait_alive().await;
    let issue = |s: &Server| {
        let s_url = s.url.clone();
        let token = s.token.clone();
        async move {
            let mut req = reqwest::Client::new()
                .post(format!("{s_url}/v2alpha1/admin/issuedApiKeys"))
                .json(&json!({"name": "n", "actor_id": "a"}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(issue(&s).await, 401, "no token");
    s.token = Some("talos_admin_first".into());
    assert_eq!(issue(&s).await, 201);

    write_config(&cfg, &with_token("talos_admin_second"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while issue(&s).await != 401 {
        assert!(
            Instant::now() < deadline,
            "the token swap was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.token = Some("talos_admin_second".into());
    assert_eq!(issue(&s).await, 201, "the new token works at once");

    // Removing every token opens the admin API again (the default, as upstream).
    write_config(&cfg, &config(SECRET_A, &[]));
    s.token = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while issue(&s).await != 201 {
        assert!(
            Instant::now() < deadline,
            "removing the tokens was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn admin_token_generate_prints_a_token_and_its_entry() {
    let out = Command::new(BIN)
        .args([
            "admin-token",
            "generate",
            "--name",
            "deploy",
            "--scopes",
            "keys:read,keys:write",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        token.starts_with("talos_admin_") && token.len() >= 12 + 43,
        "{token}"
    );
    let entry = String::from_utf8(out.stderr).unwrap();
    assert!(
        entry.contains(&talos_core::admin_auth::token_digest(&token)),
        "{entry}"
    );
    assert!(
        !entry.contains(&token),
        "stderr holds the digest, not the token"
    );
    assert!(entry.contains("\"keys:read\", \"keys:write\""), "{entry}");
    let out = Command::new(BIN)
        .args([
            "admin-token",
            "generate",
            "--name",
            "x",
            "--scopes",
            "keys:everything",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope"));
}

#[test]
fn startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let run = |config: &str| {
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, config).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(
        run("db: { dsn: \"sqlite://x.db\" }\n").contains("--dev"),
        "missing issuer suggests --dev"
    );
    let err = run(
        "credentials: { issuer: \"x\" }\nsecrets: { hmac: { current: \"too-short-secret\" } }\n",
    );
    assert!(
        err.contains("secrets.hmac.current") && !err.contains("too-short-secret"),
        "{err}"
    );
    let err = run("credentials: { issuer: \"x\" }\ndb: { dsn: \"mysql://u@h/db\" }\n");
    assert!(
        err.contains("sqlite") && err.contains("postgres"),
        "unsupported DSNs list the supported schemes: {err}"
    );
    let err = run("credentials: { issuer: \"x\" }\nserve: { http: { prot: 1 } }\n");
    assert!(err.contains("serve.http"), "{err}");
}

/// A bad CORS origin used to kill the API workers after startup while the metrics port's
/// `/health/alive` kept answering 200; now the server refuses to start, naming the key.
#[test]
fn bad_cors_origin_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "credentials: {{ issuer: \"x\" }}\nsecrets: {{ hmac: {{ current: \"{SECRET_A}\" }} }}\nserve: {{ http: {{ cors: {{ enabled: true, allowed_origins: [\"not an origin\"] }} }} }}\n"
        ),
    )
    .unwrap();
    let mut s = Server::start(dir.path(), &["serve", "--config", cfg.to_str().unwrap()]);
    // Bounded wait: the old server never exited.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "talos-server kept running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(s.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("serve.http.cors.allowed_origins"), "{err}");
}

#[test]
fn migrate_up_and_status_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite://{}/m.db", dir.path().display());
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(run(&["migrate", "status", "--database", &dsn]).contains("pending"));
    assert!(run(&["migrate", "up", "--database", &dsn]).contains("applied"));
    assert!(
        run(&["migrate", "up", "--database", &dsn]).contains("up to date"),
        "idempotent"
    );
    let status = run(&["migrate", "status", "--database", &dsn]);
    assert!(
        status.contains("applied") && !status.contains("pending"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_serve_refuses_pending_migrations() {
    let Ok(admin) = std::env::var("TALOS_TEST_DATABASE_URL") else {
        eprintln!("TALOS_TEST_DATABASE_URL unset: PostgreSQL leg not run");
        return;
    };
    let db = format!("talos_srv_{}", uuid_like());
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    let created = Command::new("psql")
        .args([admin.as_str(), "-c", &format!("CREATE DATABASE {db}")])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let dsn = format!("{base}/{db}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("credentials: {{ issuer: \"x\" }}\ndb: {{ dsn: \"{dsn}\" }}\n"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("migrate up"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = Command::new("psql")
        .args([
            admin.as_str(),
            "-c",
            &format!("DROP DATABASE IF EXISTS {db}"),
        ])
        .output();
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ (rand_seed() as u128)
    )
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(42);
    h.finish()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_never_contain_secrets_keys_or_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let jwks = "base64://eyAgImtleXMiOiBbICAgIHsgICAgICAiYWxnIjogIkVkRFNBIiwgICAgICAiY3J2IjogIkVkMjU1MTkiLCAgICAgICJkIjogIjl3VTNfV3p0dmx3TXg0SGlfN2dsSVduY09XNlVIR2I5amxDdDZEZkVGa2MiLCAgICAgICJraWQiOiAiZG9ja2VyLWRldi0wMDEiLCAgICAgICJrdHkiOiAiT0tQIiwgICAgICAidXNlIjogInNpZyIsICAgICAgIngiOiAiNGtTQTdtNU5jYnFDUC1mZk9fNGhQM2tsNHB0NGctLTNRQ21zQmwzb05lVSIgICAgfSAgXX0=";
    write_config(
        &cfg,
        &format!(
            "{}credentials:\n  issuer: \"http://logs.test\"\n  api_keys: {{ default_ttl: \"1h\" }}\n  derived_tokens:\n    jwt:\n      signing_keys:\n        urls: [\"{jwks}\"]\nlog: {{ level: \"debug\", format: \"json\" }}\ncache: {{ type: memory }}\nserve:\n  http:\n    admin_auth:\n      tokens: [{{ name: \"ops-bot\", sha256: \"{}\", scopes: [admin] }}]\n",
            config(SECRET_A, &[]).replace("credentials:\n  issuer: \"http://reload.test\"\n  api_keys: { default_ttl: \"1h\" }\n", ""),
            talos_core::admin_auth::token_digest(ADMIN_TOKEN),
        ),
    );
    let mut s = Server::start(dir.path(), &["serve", "--config", cfg.to_str().unwrap()]);
    s.wait_alive().await;
    // A refused attempt is logged (rate-limited), never with the token it presented.
    let wrong = "talos_admin_wrong_token_never_logged";
    s.token = Some(wrong.into());
    let (st, _) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "n", "actor_id": "a"}),
        )
        .await;
    assert_eq!(st, 401);
    s.token = Some(ADMIN_TOKEN.into());
    let mut secrets: Vec<String> = vec![
        ADMIN_TOKEN.into(),
        wrong.into(),
        SECRET_A.into(),
        "9wU3_Wztvlwmx4Hi_7glIWncOW6UHGb9jlCt6DfEFkc".into(),
    ];
    let key = s.issue().await;
    secrets.push(key.clone());
    assert!(s.is_valid(&key).await);
    let raw = "sk_live_never_log_me_0123456789";
    secrets.push(raw.into());
    let (st, _) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": raw, "name": "n", "actor_id": "a"}),
        )
        .await;
    assert_eq!(st, 201);
    assert!(s.is_valid(raw).await);
    let (st, _) = s
        .post(
            "/v2alpha1/admin/importedApiKeys",
            json!({"raw_key": raw, "name": "n", "actor_id": "a"}),
        )
        .await;
    assert_eq!(st, 409, "the failed import is audited, without the raw key");
    for alg in ["TOKEN_ALGORITHM_JWT", "TOKEN_ALGORITHM_MACAROON"] {
        let (st, j) = s
            .post(
                "/v2alpha1/admin/apiKeys:derive",
                json!({"credential": key, "algorithm": alg}),
            )
            .await;
        assert_eq!(st, 200, "{j}");
        let token = j["token"]["token"].as_str().unwrap().to_string();
        assert!(s.is_valid(&token).await);
        secrets.push(token);
    }
    let forged = format!("{key}x");
    assert!(!s.is_valid(&forged).await);
    secrets.push(forged);
    let (st, j) = s
        .post(
            "/v2alpha1/admin/issuedApiKeys",
            json!({"name": "n", "actor_id": "a", "ttl": "1h"}),
        )
        .await;
    assert_eq!(st, 201);
    let kid = j["issued_api_key"]["key_id"].as_str().unwrap().to_string();
    secrets.push(j["secret"].as_str().unwrap().to_string());
    let (st, j) = s
        .post(
            &format!("/v2alpha1/admin/issuedApiKeys/{kid}:rotate"),
            json!({}),
        )
        .await;
    assert_eq!(st, 201);
    secrets.push(j["secret"].as_str().unwrap().to_string());
    let (st, _) = s
        .post("/v2alpha1/apiKeys:selfRevoke", json!({"credential": key}))
        .await;
    assert_eq!(st, 200);

    s.terminate();
    let mut log = String::new();
    std::io::Read::read_to_string(s.child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("\"event\":\"IssuedAPIKeyCreated\""),
        "audit events are logged:\n{log}"
    );
    assert!(log.contains("\"event\":\"IssuedAPIKeyRotated\""));
    assert!(
        log.contains("\"admin_token\":\"ops-bot\""),
        "audit events name the admin token"
    );
    assert!(log.contains("\"event\":\"admin_auth_failed\""));
    assert!(log.contains("\"event\":\"APIKeyImportFailed\""));
    assert!(
        log.contains("\"event\":\"APIKeyVerificationFailed\""),
        "the forged key's failure is audited"
    );
    assert!(
        log.contains("\"request_id\""),
        "request lines carry the request id"
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains a secret, key or token: {secret}"
        );
    }
}

/// The metric series in a Prometheus scrape (names and labels, without values).
async fn metric_series(metrics_url: &str) -> std::collections::BTreeSet<String> {
    let text = reqwest::get(format!("{metrics_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_string()
        })
        // Histogram buckets and the pool gauges' sampling do not depend on the requests sent.
        .filter(|s| s.starts_with("http_requests_total") || s.starts_with("http_request_duration"))
        .collect()
}

/// Clients choose the request method: random methods must not add metric series (each used to
/// become a label value, so /metrics grew without bound).
#[tokio::test(flavor = "multi_thread")]
async fn random_methods_do_not_grow_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &["serve", "--dev"]);
    s.wait_alive().await;
    // Hundreds of request log lines would fill the stderr pipe and block the server.
    let mut stderr = s.child.stderr.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let client = reqwest::Client::new();
    let send_random = |n: usize, round: usize| {
        let client = client.clone();
        let url = s.url.clone();
        async move {
            for i in 0..n {
                let method =
                    reqwest::Method::from_bytes(format!("RND{round}X{i}").as_bytes()).unwrap();
                let _ = client
                    .request(method, format!("{url}/v2alpha1/admin/apiKeys:verify"))
                    .send()
                    .await
                    .unwrap();
                let _ = client
                    .request(
                        reqwest::Method::GET,
                        format!("{url}/no/such/route/{round}/{i}"),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
    };
    send_random(20, 0).await;
    let before = metric_series(&s.metrics_url).await;
    send_random(200, 1).await;
    let after = metric_series(&s.metrics_url).await;
    assert_eq!(before, after, "new series appeared");
    assert!(
        after.iter().any(|l| l.contains("method=\"OTHER\"")),
        "{after:?}"
    );
    assert!(
        after.iter().any(|l| l.contains("route=\"unmatched\"")),
        "{after:?}"
    );
    assert!(!after.iter().any(|l| l.contains("RND")), "{after:?}");
}

/// A body trickling in slower than `serve.http.client_timeout` is answered 408 and the
/// connection closed (it used to stay open for as long as the client kept sending).
#[tokio::test(flavor = "multi_thread")]
async fn slow_body_is_cut_by_the_client_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    write_config(
        &cfg,
        &format!(
            "{}serve:\n  http:\n    client_timeout: 1s\n",
            config(SECRET_A, &[])
        ),
    );
    let mut s = Server::start(dir.path(), &["serve", "--config", cfg.to_str().unwrap()]);
    s.wait_alive().await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(
        b"POST /v2alpha1/admin/apiKeys:verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    // Read until the server closes the connection; the guard only turns "never" into a failure.
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut response))
        .await
        .expect("the server kept the slow connection open")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
}

/// After SIGTERM the server drains for `serve.http.drain_time`: it still answers (a request sent
/// just before the signal must not be reset with the listener), readiness is 503 and responses
/// close their connections; then it stops within the 10 s bound.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_before_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("talos.yaml");
    write_config(
        &cfg,
        &format!(
            "{}serve:\n  http:\n    drain_time: 3s\n",
            config("drain-test-secret-0123456789abcdefghijklmnop", &[])
        ),
    );
    let mut server = Server::start(dir.path(), &["serve", "--config", cfg.to_str().unwrap()]);
    server.wait_alive().await;
    let key = server.issue().await;
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    // Readiness turns 503 while requests are still answered.
    let client = reqwest::Client::new();
    let mut drained = false;
    for _ in 0..40 {
        let r = client
            .get(format!("{}/health/ready", server.url))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["errors"]["server"], "shutting down");
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(drained, "readiness reports the shutdown");
    let r = client
        .post(format!("{}/v2alpha1/admin/apiKeys:verify", server.url))
        .json(&json!({ "credential": key }))
        .send()
        .await
        .expect("still answered while draining");
    assert_eq!(r.headers()["connection"], "close");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["is_valid"], true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "stopped within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
