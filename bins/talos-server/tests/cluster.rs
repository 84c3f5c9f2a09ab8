//! Two `talos-server` processes on one PostgreSQL and one Redis (`cache.type: redis`): a key
//! cached on node B and revoked on node A is reported revoked by B within 1 second, without any
//! cache-bypass header; the rate limiter is shared by both nodes.
//!
//! Runs only when both `TALOS_TEST_DATABASE_URL` and `TALOS_TEST_REDIS_URL` are set. With
//! `TALOS_PROPAGATION_SAMPLES=N` it revokes N keys and prints the median and maximum
//! propagation time (the figure in docs/benchmarks.md):
//!
//! ```text
//! TALOS_PROPAGATION_SAMPLES=100 cargo test -p talos-server --test cluster -- --nocapture
//! ```

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_talos-server");
const SECRET: &str = "cluster-test-secret-aaaaaaaaaaaaaaaaaaaaaaaaaa";
const VERIFY: &str = "/v2alpha1/admin/apiKeys:verify";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

struct Node {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    async fn start(config: &Path) -> Node {
        let port = free_port();
        let child = Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("TALOS_SERVE_HTTP_HOST", "127.0.0.1")
            .env("TALOS_SERVE_HTTP_PORT", port.to_string())
            .env("TALOS_SERVE_METRICS_HOST", "127.0.0.1")
            .env("TALOS_SERVE_METRICS_PORT", free_port().to_string())
            .env("TALOS_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("talos-server starts");
        let mut node = Node {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("talos-server exited with {status}");
            }
            if node
                .http
                .get(format!("{}/health/alive", node.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "talos-server did not become alive"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    async fn issue(&self, extra: Value) -> (String, String) {
        let mut body = json!({"name": "n", "actor_id": "a", "ttl": "1h"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, _, j) = self.post("/v2alpha1/admin/issuedApiKeys", body).await;
        assert_eq!(s, 201, "{j}");
        (
            j["issued_api_key"]["key_id"].as_str().unwrap().to_string(),
            j["secret"].as_str().unwrap().to_string(),
        )
    }

    /// Verifies (no cache-bypass header); returns the body and the `Ory-Talos-Cache` header.
    async fn verify(&self, credential: &str) -> (Value, String) {
        let (s, h, j) = self.post(VERIFY, json!({"credential": credential})).await;
        assert_eq!(s, 200, "{j}");
        let cache = h
            .get("ory-talos-cache")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (j, cache)
    }

    async fn revoke(&self, key_id: &str) {
        let (s, _, j) = self
            .post(
                &format!("/v2alpha1/admin/apiKeys/{key_id}:revoke"),
                json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
            )
            .await;
        assert!(s == 200 || s == 204, "{s} {j}");
    }
}

struct Database {
    admin: String,
    name: String,
    dsn: String,
}

impl Database {
    fn create(admin: &str) -> Database {
        let name = format!("talos_cluster_{}", random_suffix());
        let out = Command::new("psql")
            .args([admin, "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        let dsn = format!("{base}/{name}");
        let out = Command::new(BIN)
            .args(["migrate", "up", "--database", &dsn])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Database {
            admin: admin.to_string(),
            name,
            dsn,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin.as_str(),
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// `redis://[..@]host:port[/db]` → `host:port`.
fn redis_addr(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap().to_string()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_on_one_node_is_seen_by_the_other_within_a_second() {
    let (Ok(admin), Ok(redis)) = (
        std::env::var("TALOS_TEST_DATABASE_URL"),
        std::env::var("TALOS_TEST_REDIS_URL"),
    ) else {
        eprintln!("TALOS_TEST_DATABASE_URL or TALOS_TEST_REDIS_URL unset: two-node test not run");
        return;
    };
    let db = Database::create(&admin);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("talos.yaml");
    std::fs::write(
        &config,
        format!(
            "credentials:\n  issuer: \"http://cluster.test\"\nsecrets:\n  hmac:\n    current: \"{SECRET}\"\ndb:\n  dsn: \"{}\"\ncache:\n  type: redis\n  redis:\n    addrs: [\"{}\"]\n    key_prefix: \"talos-cluster-{}\"\nrate_limit:\n  enabled: true\n  backend: redis\n",
            db.dsn,
            redis_addr(&redis),
            random_suffix()
        ),
    )
    .unwrap();
    let a = Node::start(&config).await;
    let b = Node::start(&config).await;

    let samples: usize = std::env::var("TALOS_PROPAGATION_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut seen = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (key_id, secret) = a.issue(json!({})).await;
        // Cache it on B: the first verify misses and fills the cache, a later one hits. (B may
        // need a moment after start to subscribe to the invalidation channel; until then it
        // reads the database.)
        let (j, cache) = b.verify(&secret).await;
        assert_eq!(j["is_valid"], true, "{j}");
        assert_eq!(cache, "MISS");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (j, cache) = b.verify(&secret).await;
            assert_eq!(j["is_valid"], true, "{j}");
            if cache == "HIT" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "B never served the key from its cache"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.revoke(&key_id).await;
        let revoked = Instant::now();
        loop {
            let (j, _) = b.verify(&secret).await;
            if j["error_code"] == "VERIFICATION_ERROR_REVOKED" {
                seen.push(revoked.elapsed());
                break;
            }
            assert_eq!(j["is_valid"], true, "{j}");
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "B still accepts the key 1 s after its revocation on A"
            );
        }
    }
    let max = *seen.iter().max().unwrap();
    let med = median(&mut seen);
    eprintln!(
        "revocation propagation A -> B over {samples} revocations: median {med:?}, max {max:?}"
    );
    assert!(max < Duration::from_secs(1));

    // One bucket for both nodes: quota 3 is spent across A and B.
    let (_, secret) = a
        .issue(json!({"rate_limit_policy": {"quota": "3", "window": "1h"}}))
        .await;
    for (node, want) in [(&a, "2"), (&b, "1"), (&a, "0")] {
        let (j, _) = node.verify(&secret).await;
        assert_eq!(j["is_valid"], true, "{j}");
        assert_eq!(j["rate_limit_remaining"], want, "{j}");
    }
    let (s, h, j) = b.post(VERIFY, json!({"credential": secret})).await;
    assert_eq!(s, 200);
    assert_eq!(j["error_code"], "VERIFICATION_ERROR_RATE_LIMITED", "{j}");
    assert!(h.get("retry-after").is_some());
}
