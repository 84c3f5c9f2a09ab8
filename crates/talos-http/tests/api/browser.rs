//! Browser and host protection: foreign origins and hosts are refused before routing; clients that
//! send no `Origin` (curl, SDKs, the CLI) are unaffected.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web;
use serde_json::{Value, json};
use talos_core::Service;
use talos_core::config::{CorsConfig, load_str};
use talos_http::{Access, AppState, HostPolicy, Plane};

async fn state(cors: CorsConfig, hosts: HostPolicy) -> web::Data<AppState> {
    let yaml = "credentials:\n  issuer: \"http://talos.test\"\n  api_keys:\n    default_ttl: \"720h\"\nsecrets:\n  hmac:\n    current: \"http-test-secret-0123456789abcdefghijklmnop\"\ndb:\n  dsn: \"sqlite::memory:\"\n";
    let (config, _) = load_str(yaml, "t.yaml", &BTreeMap::new()).unwrap();
    let service = Arc::new(Service::from_config(&config).await.unwrap());
    web::Data::new(AppState {
        cors,
        access: Access::new(Plane::All).with_hosts(hosts),
        ..super::app_state(service, &config)
    })
}

macro_rules! send {
    ($app:expr, $req:expr) => {{
        let resp = call_service(&$app, $req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_body(resp).await;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, headers, json)
    }};
}

fn reason(j: &Value) -> &str {
    j["error"]["details"][0]["reason"].as_str().unwrap_or("")
}

#[actix_web::test]
async fn cross_site_form_post_and_foreign_origins_are_refused() {
    let state = state(CorsConfig::default(), HostPolicy::any()).await;
    let app = init_service(talos_http::app(state.clone())).await;
    // What a hostile page's auto-submitting <form enctype="text/plain"> sends.
    let (s, _, j) = send!(
        app,
        TestRequest::post()
            .uri("/v2alpha1/admin/importedApiKeys")
            .insert_header(("origin", "https://evil.example"))
            .insert_header(("content-type", "text/plain"))
            .set_payload(r#"{"raw_key":"attacker_chosen_key_0123456789","name":"x","actor_id":"x","ignored":"="}"#)
    );
    assert_eq!(s, StatusCode::FORBIDDEN, "{j}");
    assert_eq!(reason(&j), "ORIGIN_NOT_ALLOWED");
    let (_, _, j) = send!(
        app,
        TestRequest::post()
            .uri("/v2alpha1/admin/apiKeys:verify")
            .set_json(json!({"credential": "attacker_chosen_key_0123456789"}))
    );
    assert_eq!(j["is_valid"], false, "nothing was imported: {j}");

    for (method, path) in [
        ("POST", "/v2alpha1/admin/apiKeys:verify"),
        ("GET", "/v2alpha1/admin/issuedApiKeys"),
        ("POST", "/v2alpha1/apiKeys:selfRevoke"),
        ("GET", "/version"),
        ("OPTIONS", "/v2alpha1/admin/issuedApiKeys"),
    ] {
        let (s, _, j) = send!(
            app,
            TestRequest::default()
                .method(method.parse().unwrap())
                .uri(path)
                .insert_header(("origin", "http://192.168.1.20:3000"))
                .set_json(json!({}))
        );
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {j}");
        assert_eq!(reason(&j), "ORIGIN_NOT_ALLOWED", "{method} {path}");
        assert!(
            j["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    for path in ["/.well-known/jwks.json", "/v2alpha1/derivedKeys/jwks.json"] {
        let (s, _, j) = send!(
            app,
            TestRequest::get()
                .uri(path)
                .insert_header(("origin", "https://any.example"))
        );
        assert_eq!(s, StatusCode::OK, "GET {path} is open to browsers: {j}");
    }
    // No Origin (curl -d sends a form content type): unaffected, body parsed as JSON.
    let (s, _, j) = send!(
        app,
        TestRequest::post()
            .uri("/v2alpha1/admin/issuedApiKeys")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(r#"{"name":"n","actor_id":"a"}"#)
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
}

#[actix_web::test]
async fn an_allowed_cors_origin_is_accepted() {
    let cors = CorsConfig {
        enabled: true,
        allowed_origins: vec!["https://app.example.com".into()],
        ..Default::default()
    };
    let state = state(cors, HostPolicy::any()).await;
    let app = init_service(talos_http::app(state.clone())).await;
    let (s, h, j) = send!(
        app,
        TestRequest::post()
            .uri("/v2alpha1/admin/issuedApiKeys")
            .insert_header(("origin", "https://app.example.com"))
            .set_json(json!({"name": "n", "actor_id": "a"}))
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    let (s, _, j) = send!(
        app,
        TestRequest::post()
            .uri("/v2alpha1/admin/issuedApiKeys")
            .insert_header(("origin", "https://other.example.com"))
            .set_json(json!({"name": "n", "actor_id": "a"}))
    );
    assert_eq!(s, StatusCode::FORBIDDEN, "{j}");
    assert_eq!(reason(&j), "ORIGIN_NOT_ALLOWED");
}

#[actix_web::test]
async fn a_foreign_host_is_refused_on_a_loopback_bind() {
    let state = state(CorsConfig::default(), HostPolicy::new(&[], &[], true)).await;
    let app = init_service(talos_http::app(state.clone())).await;
    // DNS rebinding: evil.example resolves to 127.0.0.1, the browser sends Host: evil.example.
    for host in [
        "evil.example",
        "evil.example:4420",
        "localhost.evil.example",
    ] {
        let (s, _, j) = send!(
            app,
            TestRequest::post()
                .uri("/v2alpha1/admin/apiKeys:verify")
                .insert_header(("host", host))
                .set_json(json!({"credential": "x"}))
        );
        assert_eq!(s.as_u16(), 421, "{host}: {j}");
        assert_eq!(reason(&j), "HOST_NOT_ALLOWED", "{host}");
    }
    for host in [
        "localhost:4420",
        "127.0.0.1:4420",
        "[::1]:4420",
        "localhost",
    ] {
        let (s, _, j) = send!(
            app,
            TestRequest::get()
                .uri("/v2alpha1/admin/issuedApiKeys")
                .insert_header(("host", host))
        );
        assert_eq!(s, StatusCode::OK, "{host}: {j}");
    }
}
