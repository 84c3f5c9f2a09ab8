//! The remote backend against a real `talos-server`: the guard answers as the server's
//! `/gateway/verify` does (status, challenge, body), and sees a revocation at once (no cache).

use std::path::PathBuf;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use talos_guard::Guard;
use talos_test_support::TestApp;
use tower::ServiceExt;

use super::{axum_example, forged};

const TOKEN: &str = "talos_admin_guard_test_token";

/// `talos-server` beside this test binary (cargo builds workspace binaries into one directory).
fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let p = dir.join(format!("talos-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.is_file(),
        "talos-server not found at {} — build it first (`cargo build -p talos-server`)",
        p.display()
    );
    p
}

/// (status, `WWW-Authenticate`, JSON body) of one answer.
type Answer = (u16, Option<String>, Value);

async fn guarded(guard: &Guard, method: &str, key: Option<&str>) -> Answer {
    let mut b = Request::builder().method(method).uri("/invoices");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let resp = axum_example::router(guard.clone())
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let status = resp.status().as_u16();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (
        status,
        challenge,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn gateway(app: &TestApp, scope: &str, key: Option<&str>) -> Answer {
    let mut req = reqwest::Client::new().get(format!("{}/gateway/verify?scope={scope}", app.url));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), challenge, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_guard_answers_as_the_gateway() {
    let app = TestApp::builder()
        .binary(server_binary())
        .admin_token("guard", TOKEN, &["admin"])
        .spawn();
    let (key_id, reader) = app
        .issue_with(json!({"actor_id": "reader", "scopes": ["invoices:read"]}))
        .await;
    let client = talos_client::Client::new(&app.url)
        .unwrap()
        .with_token(TOKEN)
        .unwrap();
    let guard = Guard::remote(client);

    let (s, _, j) = guarded(&guard, "GET", Some(&reader)).await;
    assert_eq!((s, &j["actor_id"]), (200, &json!("reader")));

    // Each refusal, the guard's and the gateway's, byte for byte in status, challenge and body.
    let forged = forged(&reader);
    for (method, scope, key) in [
        ("GET", "invoices:read", None),
        ("GET", "invoices:read", Some(forged.as_str())),
        ("POST", "invoices:write", Some(reader.as_str())),
    ] {
        let ours = guarded(&guard, method, key).await;
        let theirs = gateway(&app, scope, key).await;
        assert_eq!(ours, theirs, "{method} {key:?}");
        assert_ne!(ours.0, 200);
    }

    // No cache in the remote backend: a revocation is seen by the very next request.
    let (s, body) = app
        .post(
            &format!("/v2alpha1/admin/apiKeys/{key_id}:revoke"),
            json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"}),
        )
        .await;
    assert!((200..300).contains(&s), "revoke: {s} {body}");
    let (s, _, j) = guarded(&guard, "GET", Some(&reader)).await;
    assert_eq!(s, 401, "{j}");
    assert_eq!(
        guarded(&guard, "GET", Some(&reader)).await,
        gateway(&app, "invoices:read", Some(&reader)).await
    );

    // A server that does not answer: closed, 500.
    let down = talos_client::Client::new(format!(
        "http://127.0.0.1:{}",
        talos_test_support::free_port()
    ))
    .unwrap();
    let (s, _, _) = guarded(&Guard::remote(down), "GET", Some(&reader)).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR.as_u16());
}

/// The server's rate-limit headers reach the guard's answers: `RateLimit*` on an allowed
/// request, the server's own `Retry-After` on the 429 (an hour's window: far more than 1 s).
#[tokio::test(flavor = "multi_thread")]
async fn remote_guard_passes_on_the_server_s_rate_limit_headers() {
    let app = TestApp::builder()
        .binary(server_binary())
        .admin_token("guard", TOKEN, &["admin"])
        .config("rate_limit:\n  enabled: true\n")
        .spawn();
    let (_, key) = app
        .issue_with(json!({
            "actor_id": "reader",
            "scopes": ["invoices:read"],
            "rate_limit_policy": {"quota": "1", "window": "1h"}
        }))
        .await;
    let client = talos_client::Client::new(&app.url)
        .unwrap()
        .with_token(TOKEN)
        .unwrap();
    let router = axum_example::router(Guard::remote(client));
    let call = || async {
        router
            .clone()
            .oneshot(
                Request::builder()
                    .uri("/invoices")
                    .header("authorization", format!("Bearer {key}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    };
    let header = |r: &axum::response::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let ok = call().await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        header(&ok, "ratelimit-policy").as_deref(),
        Some("\"default\";q=1;w=3600")
    );
    assert_eq!(header(&ok, "ratelimit").as_deref(), Some("\"default\";r=0"));
    let refused = call().await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!(
        retry > 60,
        "the server's Retry-After, not a made-up 1: {retry}"
    );
}
