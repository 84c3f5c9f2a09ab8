//! `serve admin` and `serve public` as two processes on one database.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_talos-server");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `serve <plane>` bound to `host` (all interfaces in these tests: the warning depends on it).
    async fn start(dir: &Path, plane: &str, host: &str) -> Proc {
        let port = free_port();
        let child = Command::new(BIN)
            .args(["serve", plane, "--config", "config.yaml"])
            .current_dir(dir)
            .env("TALOS_SERVE_HTTP_HOST", host)
            .env("TALOS_SERVE_HTTP_PORT", port.to_string())
            .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
            .env("TALOS_SERVE_METRICS_PORT", free_port().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut p = Proc {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("serve {plane} exited with {status}: {}", p.log());
            }
            if reqwest::get(format!("{}/health/alive", p.url))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return p;
            }
            assert!(Instant::now() < deadline, "serve {plane} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Kills the process and returns its log.
    fn log(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut log).ok();
        log
    }
}

fn assert_not_found(what: &str, (status, body): (u16, Value)) {
    assert_eq!(status, 404, "{what}: {body}");
    assert_eq!(
        body["error"]["details"][0]["reason"], "NOT_FOUND",
        "{what}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_and_public_planes_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "credentials:\n  issuer: \"http://planes.test\"\n  api_keys: { default_ttl: \"1h\" }\nsecrets:\n  hmac:\n    current: \"planes-test-secret-0123456789abcdefghijkl\"\ndb:\n  dsn: \"sqlite://shared.db\"\n",
    )
    .unwrap();
    // The admin plane first: it applies the SQLite migrations.
    let mut admin = Proc::start(dir.path(), "admin", "0.0.0.0").await;
    let mut public = Proc::start(dir.path(), "public", "0.0.0.0").await;
    use reqwest::Method as M;

    let (s, issued) = admin
        .call(
            M::POST,
            "/v2alpha1/admin/issuedApiKeys",
            Some(json!({"name": "n", "actor_id": "a"})),
        )
        .await;
    assert_eq!(s, 201, "{issued}");
    let secret = issued["secret"].as_str().unwrap();
    let kid = issued["issued_api_key"]["key_id"].as_str().unwrap();

    // Public: JWKS, health, version; every admin route is 404 in the envelope.
    for path in [
        "/.well-known/jwks.json",
        "/v2alpha1/derivedKeys/jwks.json",
        "/health/alive",
        "/version",
    ] {
        assert_eq!(
            public.call(M::GET, path, None).await.0,
            200,
            "public {path}"
        );
        assert_eq!(admin.call(M::GET, path, None).await.0, 200, "admin {path}");
    }
    for e in talos_http::endpoints::ENDPOINTS
        .iter()
        .filter(|e| e.path.starts_with("/v2alpha1/admin/"))
    {
        let method: M = e.method.as_str().to_uppercase().parse().unwrap();
        let path = e.path.replace("{key_id}", kid);
        assert_not_found(
            &format!("public {method} {path}"),
            public.call(method, &path, Some(json!({}))).await,
        );
    }
    assert_not_found(
        "public openapi",
        public.call(M::GET, "/openapi.json", None).await,
    );
    assert_eq!(admin.call(M::GET, "/openapi.json", None).await.0, 200);

    // Self-revoke only on the public plane; the admin plane sees its effect in the shared database.
    assert_not_found(
        "admin self-revoke",
        admin
            .call(
                M::POST,
                "/v2alpha1/apiKeys:selfRevoke",
                Some(json!({"credential": secret})),
            )
            .await,
    );
    let (s, j) = public
        .call(
            M::POST,
            "/v2alpha1/apiKeys:selfRevoke",
            Some(json!({"credential": secret})),
        )
        .await;
    assert_eq!(s, 200, "{j}");
    let (s, j) = admin
        .call(
            M::GET,
            &format!("/v2alpha1/admin/issuedApiKeys/{kid}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(j["status"], "KEY_STATUS_REVOKED", "{j}");

    let admin_log = admin.log();
    assert!(
        admin_log.contains("the admin API is open"),
        "an open admin plane on a non-loopback address warns:\n{admin_log}"
    );
    let public_log = public.log();
    assert!(
        !public_log.contains("the admin API is open"),
        "the public plane serves no admin API:\n{public_log}"
    );
}
