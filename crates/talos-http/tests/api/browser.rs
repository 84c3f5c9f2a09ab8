//! Browser and host protection: foreign origins and hosts are refused before routing; clients that
//! send no `Origin` (curl, SDKs, the CLI) are unaffected.

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web;
use serde_json::{Value, json};
use talos_http::config::CorsConfig;
use talos_http::{Access, AppState, HostPolicy, Plane};
use talos_test_support::TestApp;

async fn state(cors: CorsConfig, hosts: HostPolicy) -> web::Data<AppState> {
    let base = TestApp::builder().app_state().await;
    web::Data::new(AppState {
        cors: cors.into(),
        access: Access::new(Plane::All).with_hosts(hosts),
        ..base
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

/// `serve.http.cors` and `client_ip_source` are read per request: a reload (`Live::set`) applies
/// to the next request of a running app, as upstream's hot reload does.
#[actix_web::test]
async fn cors_and_the_client_ip_source_reload_while_serving() {
    let state = state(CorsConfig::default(), HostPolicy::any()).await;
    let app = init_service(talos_http::app(state.clone())).await;
    let from_app = || {
        TestRequest::get()
            .uri("/v2alpha1/admin/issuedApiKeys")
            .insert_header(("origin", "https://app.example.com"))
    };
    let (s, _, _) = send!(app, from_app());
    assert_eq!(s, StatusCode::FORBIDDEN, "CORS off");

    state.cors.set(CorsConfig {
        enabled: true,
        allowed_origins: vec!["https://app.example.com".into()],
        allowed_headers: vec!["Content-Type".into()],
        exposed_headers: vec!["X-Request-Id".into()],
        allow_credentials: true,
        max_age: 600,
        debug: true,
        ..Default::default()
    });
    let (s, h, _) = send!(app, from_app());
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    assert_eq!(h.get("access-control-allow-credentials").unwrap(), "true");
    assert_eq!(
        h.get("access-control-expose-headers").unwrap(),
        "X-Request-Id"
    );
    let preflight = |method: &str, headers: &str| {
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/v2alpha1/admin/issuedApiKeys")
            .insert_header(("origin", "https://app.example.com"))
            .insert_header(("access-control-request-method", method.to_string()))
            .insert_header(("access-control-request-headers", headers.to_string()))
    };
    let (s, h, _) = send!(app, preflight("POST", "content-type"));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    assert!(
        h.get("access-control-allow-methods")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(h.get("access-control-max-age").unwrap(), "600");
    for (method, headers) in [("PROPFIND", "content-type"), ("POST", "x-secret-header")] {
        let (_, h, _) = send!(app, preflight(method, headers));
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "{method} {headers}: no grant"
        );
    }

    // An IP-restricted key: the client IP comes from the TCP peer, then from X-Real-IP.
    let (s, _, j) = send!(
        app,
        TestRequest::post()
            .uri("/v2alpha1/admin/issuedApiKeys")
            .set_json(json!({"name": "n", "actor_id": "a", "ip_restriction": {"allowed_cidrs": ["203.0.113.7/32"]}}))
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let secret = j["secret"].as_str().unwrap().to_string();
    let verify = || {
        TestRequest::post()
            .uri("/v2alpha1/admin/apiKeys:verify")
            .insert_header(("x-real-ip", "203.0.113.7"))
            .set_json(json!({"credential": secret}))
    };
    let (_, _, j) = send!(app, verify());
    assert_eq!(
        j["is_valid"], false,
        "the peer address is not 203.0.113.7: {j}"
    );
    state
        .client_ip_source
        .set(talos_http::ClientIpSource::XRealIp);
    let (_, _, j) = send!(app, verify());
    assert_eq!(j["is_valid"], true, "X-Real-IP is trusted now: {j}");
}
