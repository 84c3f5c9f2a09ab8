//! The actix-web example (`examples/actix.rs`) on the in-process backend.

use actix_web::App;
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use serde_json::{Value, json};

use super::{Embedded, actix_example, forged};

macro_rules! send {
    ($app:expr, $req:expr) => {{
        let resp = call_service(&$app, $req.to_request()).await;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let (challenge, retry) = (header("www-authenticate"), header("retry-after"));
        let body = read_body(resp).await;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, json, challenge, retry)
    }};
}

fn get(path: &str) -> TestRequest {
    TestRequest::get().uri(path)
}

fn bearer(req: TestRequest, secret: &str) -> TestRequest {
    req.insert_header(("Authorization", format!("Bearer {secret}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_require_their_scopes() {
    let t = Embedded::new().await;
    let (_, reader) = t.issue("reader", &["invoices:read"], None).await;
    let (_, writer) = t
        .issue("writer", &["invoices:read", "invoices:write"], None)
        .await;
    let app = init_service(App::new().configure(actix_example::routes(t.guard.clone()))).await;

    let (s, _, _, _) = send!(app, get("/health"));
    assert_eq!(s, StatusCode::OK, "an open route stays open");

    let (s, j, challenge, _) = send!(app, get("/invoices"));
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(j["isValid"], false);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"talos\""));

    let (s, j, _, _) = send!(app, bearer(get("/invoices"), &reader));
    assert_eq!((s, &j["actor_id"]), (StatusCode::OK, &json!("reader")));
    let (s, j, _, _) = send!(
        app,
        get("/invoices").insert_header(("X-API-Key", reader.as_str()))
    );
    assert_eq!(
        (s, &j["actor_id"]),
        (StatusCode::OK, &json!("reader")),
        "X-API-Key"
    );

    let (s, j, challenge, _) = send!(app, bearer(TestRequest::post().uri("/invoices"), &reader));
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(j["missingScopes"], json!(["invoices:write"]));
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer error=\"insufficient_scope\", scope=\"invoices:write\"")
    );
    let (s, j, _, _) = send!(app, bearer(TestRequest::post().uri("/invoices"), &writer));
    assert_eq!(
        (s, &j["created_by"]),
        (StatusCode::CREATED, &json!("writer"))
    );

    let (s, j, challenge, _) = send!(app, bearer(get("/invoices"), &forged(&reader)));
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn extractor_alone_verifies_and_revocation_is_immediate() {
    let t = Embedded::new().await;
    let (key_id, secret) = t.issue("someone", &["x"], None).await;
    let app = init_service(App::new().configure(actix_example::routes(t.guard.clone()))).await;

    let (s, _, _, _) = send!(app, get("/whoami"));
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the extractor refuses a bare request"
    );
    let (s, j, _, _) = send!(app, bearer(get("/whoami"), &secret));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        j,
        json!({"key_id": key_id, "actor_id": "someone", "scopes": ["x"]})
    );

    // Cached now; the revocation must still win at once.
    t.revoke(&key_id).await;
    let (s, j, _, _) = send!(app, bearer(get("/whoami"), &secret));
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    assert_eq!(j["errorCode"], "VERIFICATION_ERROR_REVOKED");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_key_is_429_with_retry_after() {
    let t = Embedded::new().await;
    let (_, secret) = t.issue("limited", &["invoices:read"], Some(1)).await;
    let app = init_service(App::new().configure(actix_example::routes(t.guard.clone()))).await;
    // Allowed, the response says how much of the limit is left, as gateway verify does.
    let resp = call_service(&app, bearer(get("/invoices"), &secret).to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap());
    assert_eq!(header("ratelimit-policy"), Some("\"default\";q=1;w=60"));
    assert_eq!(header("ratelimit"), Some("\"default\";r=0"));
    let (s, j, _, retry) = send!(app, bearer(get("/invoices"), &secret));
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{j}");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn extractor_without_any_guard_is_a_500() {
    use talos_guard::VerifiedKey;
    async fn handler(_: VerifiedKey) -> &'static str {
        "unreachable"
    }
    let app = init_service(App::new().route("/", actix_web::web::get().to(handler))).await;
    let (s, _, _, _) = send!(app, get("/"));
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
}
