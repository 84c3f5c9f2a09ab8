//! The real actix application, every route: successes, documented errors and the wire edge cases.

#[path = "api/admin_auth.rs"]
mod admin_auth;
#[path = "api/browser.rs"]
mod browser;

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web;
use serde_json::{Value, json};
use talos_http::{AppState, ClientIpSource};
use talos_test_support::TestApp;

const A: &str = "/v2alpha1/admin";

/// The suite's application: the test deployment with the dev JWKS and a memory cache, plus
/// `extra` YAML merged over it.
async fn state_with(extra: &str) -> web::Data<AppState> {
    TestApp::builder()
        .quickstart_jwks()
        .cache("memory")
        .config(extra)
        .state()
        .await
}

macro_rules! app {
    ($state:expr) => {
        init_service(talos_http::app($state.clone())).await
    };
}

/// Sends a request; returns status, headers and JSON body (Null when empty).
macro_rules! send {
    ($app:expr, $req:expr) => {{
        let resp = call_service(&$app, $req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_body(resp).await;
        let json: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).expect("JSON body")
        };
        (status, headers, json)
    }};
}

// After the macros it uses (macro_rules! scope is textual).
#[path = "api/upstream.rs"]
mod upstream;

fn post(path: &str, body: Value) -> TestRequest {
    TestRequest::post().uri(path).set_json(body)
}

fn assert_envelope(status: StatusCode, body: &Value, want: u16, reason: &str) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(body["error"]["code"], want, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"]["details"][0]["reason"], reason, "{body}");
    assert_eq!(
        body["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
}

#[actix_web::test]
async fn issued_key_lifecycle() {
    let state = state_with("").await;
    let app = app!(state);
    let (s, h, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "svc", "actor_id": "u1", "scopes": ["b", "a", "b"], "ttl": "1d", "metadata": {"t": 1}})
        )
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let kid = j["issued_api_key"]["key_id"].as_str().unwrap().to_string();
    let secret = j["secret"].as_str().unwrap().to_string();
    assert_eq!(
        h.get("location").unwrap(),
        &format!("{A}/issuedApiKeys/{kid}")
    );
    assert_eq!(
        j["issued_api_key"]["scopes"],
        json!(["b", "a", "b"]),
        "scopes keep request order"
    );
    assert_eq!(
        j["issued_api_key"]["visibility"],
        "KEY_VISIBILITY_UNSPECIFIED"
    );
    assert!(
        j["issued_api_key"].get("last_used_time").is_none(),
        "unset times are omitted, not null"
    );
    assert!(j["issued_api_key"].get("rate_limit_policy").is_none());

    let (s, h, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:verify"),
            json!({"credential": secret})
        )
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (j["is_valid"].clone(), j["is_active"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(j["issuer"], "http://talos.test");
    assert_eq!(h.get("ory-talos-cache").unwrap(), "MISS");
    assert!(j.get("error_code").is_none());
    let (_, h, _) = send!(
        app,
        post(
            &format!("{A}/apiKeys:verify"),
            json!({"credential": secret})
        )
    );
    assert_eq!(h.get("ory-talos-cache").unwrap(), "HIT");
    let (_, h, _) = send!(
        app,
        post(
            &format!("{A}/apiKeys:verify"),
            json!({"credential": secret})
        )
        .insert_header(("Cache-Control", "max-age=0, No-Cache"))
    );
    assert_eq!(h.get("ory-talos-cache").unwrap(), "SKIP");

    let (s, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/issuedApiKeys/{kid}"))
    );
    assert_eq!(
        (s, j["metadata"].clone()),
        (StatusCode::OK, json!({"t": 1}))
    );

    // PATCH: query mask, wrapped body; a field outside the mask stays.
    let (s, _, j) = send!(
        app,
        TestRequest::patch()
            .uri(&format!("{A}/issuedApiKeys/{kid}?update_mask=name,rateLimitPolicy"))
            .set_json(json!({"issued_api_key": {"name": "renamed", "metadata": {"x": 1}, "rate_limit_policy": {"quota": "10", "window": "1m"}}}))
    );
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["name"], "renamed");
    assert_eq!(j["metadata"], json!({"t": 1}));
    assert_eq!(
        j["rate_limit_policy"],
        json!({"quota": "10", "window": "60s", "unit": "requests"})
    );
    // Bare body, body mask as {paths}; an empty masked value clears.
    let (s, _, j) = send!(
        app,
        TestRequest::patch()
            .uri(&format!("{A}/issuedApiKeys/{kid}"))
            .set_json(json!({"update_mask": {"paths": ["scopes"]}, "scopes": []}))
    );
    assert_eq!((s, j["scopes"].clone()), (StatusCode::OK, json!([])));
    for (uri, body) in [
        (
            format!("{A}/issuedApiKeys/{kid}?update_mask=actor_id"),
            json!({"actor_id": "x"}),
        ),
        (
            format!("{A}/issuedApiKeys/{kid}?update_mask=name"),
            json!({"update_mask": "scopes", "name": "y"}),
        ),
        (
            format!("{A}/issuedApiKeys/{kid}"),
            json!({"key_id": "00000000-0000-0000-0000-000000000001", "name": "z"}),
        ),
    ] {
        let (s, _, j) = send!(app, TestRequest::patch().uri(&uri).set_json(body));
        assert_envelope(s, &j, 400, "BAD_REQUEST");
    }

    // Rotate: 201 + Location, old revoked; rotating again is 409.
    let (s, h, j) = send!(
        app,
        post(&format!("{A}/issuedApiKeys/{kid}:rotate"), json!({}))
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let new_kid = j["issued_api_key"]["key_id"].as_str().unwrap();
    assert_eq!(
        h.get("location").unwrap(),
        &format!("{A}/issuedApiKeys/{new_kid}")
    );
    assert_eq!(j["old_issued_api_key"]["status"], "KEY_STATUS_REVOKED");
    assert_eq!(
        j["old_issued_api_key"]["revocation_reason"],
        "REVOCATION_REASON_SUPERSEDED"
    );
    assert_eq!(
        j["issued_api_key"]["name"], "renamed",
        "rotation inherits fields"
    );
    let (s, _, j) = send!(
        app,
        post(&format!("{A}/issuedApiKeys/{kid}:rotate"), json!({}))
    );
    assert_envelope(s, &j, 409, "FAILED_PRECONDITION");
    assert_eq!(j["error"]["status"], "FAILED_PRECONDITION");

    // Revoke via the per-kind path; description is an alias of reason_text.
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys/{new_kid}:revoke"),
            json!({"reason": 4, "description": "left"})
        )
    );
    assert_eq!(s, StatusCode::NO_CONTENT, "{j}");
    let (_, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/issuedApiKeys/{new_kid}"))
    );
    assert_eq!(
        (j["status"].clone(), j["revocation_description"].clone()),
        (json!("KEY_STATUS_REVOKED"), json!("left"))
    );
    let (s, _, j) = send!(
        app,
        post(&format!("{A}/apiKeys/{new_kid}:revoke"), json!({}))
    );
    assert_envelope(s, &j, 409, "CONFLICT");
}

#[actix_web::test]
async fn lists_filters_and_tokens() {
    let state = state_with("").await;
    let app = app!(state);
    for _ in 0..3 {
        let (s, _, _) = send!(
            app,
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"name": "n", "actor_id": "lister"})
            )
        );
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/issuedApiKeys?actor_id=lister&page_size=2"))
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["issued_api_keys"].as_array().unwrap().len(), 2);
    let token = j["next_page_token"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let (_, _, j) = send!(
        app,
        TestRequest::get().uri(&format!(
            "{A}/issuedApiKeys?actor_id=lister&page_size=2&page_token={token}"
        ))
    );
    assert_eq!(
        (
            j["issued_api_keys"].as_array().unwrap().len(),
            j["next_page_token"].clone()
        ),
        (1, json!(""))
    );
    let (_, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/issuedApiKeys?actor_id=lister&status=active"))
    );
    assert_eq!(j["issued_api_keys"].as_array().unwrap().len(), 3);
    for bad in [
        "page_size=abc",
        "status=active",
        "page_token=garbage",
        "filter=name%3D%22x%22",
        "actor_id=a&filter=actor_id%3D%22b%22",
    ] {
        let (s, _, j) = send!(
            app,
            TestRequest::get().uri(&format!("{A}/issuedApiKeys?{bad}"))
        );
        assert_envelope(s, &j, 400, "BAD_REQUEST");
    }
}

#[actix_web::test]
async fn imported_keys() {
    let state = state_with("").await;
    let app = app!(state);
    let body =
        json!({"raw_key": "sk_test_123", "name": "stripe", "actor_id": "pay", "ttl": "8760h"});
    let (s, h, j) = send!(app, post(&format!("{A}/importedApiKeys"), body.clone()));
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let kid = j["imported_api_key"]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        j["key_id"],
        json!(kid),
        "fields served at the top level too"
    );
    assert_eq!(kid.len(), 64);
    assert_eq!(
        h.get("location").unwrap(),
        &format!("{A}/importedApiKeys/{kid}")
    );
    assert!(
        !j.to_string().contains("sk_test_123"),
        "raw_key is never echoed"
    );
    let (s, _, j) = send!(app, post(&format!("{A}/importedApiKeys"), body));
    assert_envelope(s, &j, 409, "API_KEY_EXISTS");
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/importedApiKeys"),
            json!({"raw_key": "eyJa.eyJb.c", "name": "n", "actor_id": "a"})
        )
    );
    assert_envelope(s, &j, 409, "INVALID_TOKEN_TYPE");

    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:verify"),
            json!({"credential": "sk_test_123"})
        )
    );
    assert_eq!(
        (j["is_valid"].clone(), j["key_id"].clone()),
        (json!(true), json!(kid))
    );
    let (s, _, j) = send!(
        app,
        TestRequest::patch()
            .uri(&format!("{A}/importedApiKeys/{kid}"))
            .set_json(json!({"name": "renamed"}))
    );
    assert_eq!((s, j["name"].clone()), (StatusCode::OK, json!("renamed")));
    let (_, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/importedApiKeys?actor_id=pay"))
    );
    assert_eq!(j["imported_api_keys"][0]["key_id"], json!(kid));
    let (s, _, _) = send!(
        app,
        post(
            &format!("{A}/importedApiKeys/{kid}:revoke"),
            json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"})
        )
    );
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:verify"),
            json!({"credential": "sk_test_123"})
        )
    );
    assert_eq!(j["error_code"], "VERIFICATION_ERROR_REVOKED");
    assert_eq!(
        (
            j["key_id"].clone(),
            j["scopes"].clone(),
            j["metadata"].clone()
        ),
        (json!(""), json!([]), json!({}))
    );
    let (s, _, _) = send!(
        app,
        TestRequest::delete().uri(&format!("{A}/importedApiKeys/{kid}"))
    );
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/importedApiKeys/{kid}"))
    );
    assert_envelope(s, &j, 404, "API_KEY_NOT_FOUND");
}

#[actix_web::test]
async fn batch_import_and_batch_verify() {
    let state = state_with("").await;
    let app = app!(state);
    let keys = json!([{"raw_key": "k1", "name": "a", "actor_id": "b"}, {"raw_key": "k1", "name": "a", "actor_id": "b"}, {"name": "no raw key", "actor_id": "b"}]);
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/importedApiKeys:batchCreate"),
            json!({"requests": keys})
        )
    );
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(
        (j["success_count"].clone(), j["failure_count"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(
        j["results"][1]["error_code"],
        "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS"
    );
    assert_eq!(
        j["results"][2]["error_code"],
        "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INVALID_ARGUMENT"
    );
    assert!(j["results"][0].get("error_code").is_none());
    // All failing: the dominant code decides, and the body still has the results.
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/importedApiKeys:batchImport"),
            json!({"keys": [{"raw_key": "k1", "name": "a", "actor_id": "b"}]})
        )
    );
    assert_envelope(s, &j, 409, "API_KEY_EXISTS");
    assert_eq!(j["failure_count"], 1);
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/importedApiKeys:batchImport"),
            json!({"keys": [], "requests": []})
        )
    );
    assert_envelope(s, &j, 400, "BAD_REQUEST");

    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:batchVerify"),
            json!({"requests": [{"credential": "k1"}, null, {"credential": "nope"}]})
        )
    );
    assert_eq!(s, StatusCode::OK);
    let r = j["results"].as_array().unwrap();
    assert_eq!(r[0]["is_valid"], true);
    assert_eq!(r[1]["error_code"], "VERIFICATION_ERROR_INVALID_FORMAT");
    assert_eq!(r[2]["error_code"], "VERIFICATION_ERROR_NOT_FOUND");
    let (s, _, j) = send!(
        app,
        post(&format!("{A}/apiKeys:batchVerify"), json!({"requests": []}))
    );
    assert_envelope(s, &j, 400, "BAD_REQUEST");
}

#[actix_web::test]
async fn derive_jwks_and_self_revoke() {
    let state = state_with("").await;
    let app = app!(state);
    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "n", "actor_id": "a", "scopes": ["r"]})
        )
    );
    let secret = j["secret"].as_str().unwrap().to_string();
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:derive"),
            json!({"credential": secret, "custom_claims": {"role": "x"}})
        )
    );
    assert_eq!(s, StatusCode::OK, "{j}");
    let token = j["token"]["token"].as_str().unwrap().to_string();
    assert_eq!(token.matches('.').count(), 2, "algorithm defaults to JWT");
    assert_eq!(j["token"]["claims"]["role"], "x");
    let (_, h, j) = send!(
        app,
        post(&format!("{A}/apiKeys:verify"), json!({"credential": token}))
    );
    assert_eq!(
        (
            j["is_valid"].clone(),
            h.get("ory-talos-cache").unwrap().to_str().unwrap()
        ),
        (json!(true), "SKIP")
    );
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:derive"),
            json!({"credential": secret, "algorithm": "TOKEN_ALGORITHM_NOPE"})
        )
    );
    assert_envelope(s, &j, 400, "BAD_REQUEST");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("algorithm")
    );

    let (s, _, j) = send!(
        app,
        TestRequest::get().uri("/v2alpha1/derivedKeys/jwks.json")
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["jwks"]["keys"][0]["kid"], "docker-dev-001");
    assert!(j["keys"][0].get("d").is_none(), "no private members");
    let (_, _, j) = send!(app, TestRequest::get().uri("/.well-known/jwks.json"));
    assert_eq!(j["keys"][0]["kty"], "OKP");

    let (s, _, j) = send!(
        app,
        post("/v2alpha1/apiKeys:selfRevoke", json!({"credential": token}))
    );
    assert_envelope(s, &j, 400, "DERIVED_TOKEN_NOT_REVOCABLE");
    let (s, _, j) = send!(
        app,
        post(
            "/v2alpha1/apiKeys:selfRevoke",
            json!({"credential": secret, "reason": "REVOCATION_REASON_PRIVILEGE_WITHDRAWN"})
        )
    );
    assert_envelope(s, &j, 400, "BAD_REQUEST");
    for _ in 0..2 {
        let (s, _, j) = send!(
            app,
            post(
                "/v2alpha1/apiKeys:selfRevoke",
                json!({"credential": secret})
            )
        );
        assert_eq!(
            (s, j),
            (StatusCode::OK, json!({})),
            "self-revoke is idempotent"
        );
    }
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:derive"),
            json!({"credential": secret})
        )
    );
    assert_envelope(s, &j, 403, "API_KEY_REVOKED");
}

#[actix_web::test]
async fn wire_errors_never_500() {
    let state = state_with("").await;
    let app = app!(state);
    let cases: Vec<(TestRequest, u16, &str)> = vec![
        (
            TestRequest::post()
                .uri(&format!("{A}/issuedApiKeys"))
                .set_payload("{nope"),
            400,
            "BAD_REQUEST",
        ),
        (
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"name": 5, "actor_id": "a"}),
            ),
            400,
            "BAD_REQUEST",
        ),
        (
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"name": "n", "actor_id": "a", "ttl": 60}),
            ),
            400,
            "BAD_REQUEST",
        ),
        (
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"name": "n", "actor_id": "a", "visibility": "NOPE"}),
            ),
            400,
            "BAD_REQUEST",
        ),
        (
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"name": "n", "actor_id": "a", "metadata": {"big": "x".repeat(70_000)}}),
            ),
            400,
            "BAD_REQUEST",
        ),
        (
            TestRequest::post()
                .uri(&format!("{A}/issuedApiKeys"))
                .set_payload(vec![b' '; 5 << 20]),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (TestRequest::get().uri("/nope"), 404, "NOT_FOUND"),
        (
            TestRequest::delete().uri(&format!("{A}/issuedApiKeys")),
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            TestRequest::get().uri(&format!("{A}/issuedApiKeys/not-a-uuid")),
            404,
            "API_KEY_NOT_FOUND",
        ),
        (
            TestRequest::get().uri(&format!("{A}/issuedApiKeys/{}", uuid::Uuid::new_v4())),
            404,
            "API_KEY_NOT_FOUND",
        ),
        (
            post(&format!("{A}/apiKeys/abc:revoke"), json!({})),
            404,
            "API_KEY_NOT_FOUND",
        ),
        (
            post(&format!("{A}/apiKeys:verify"), json!({"credential": ["x"]})),
            400,
            "BAD_REQUEST",
        ),
    ];
    for (req, want, reason) in cases {
        let (s, h, j) = send!(app, req);
        assert_envelope(s, &j, want, reason);
        assert!(h.contains_key("x-request-id"));
    }
    // An empty body on a POST action equals {}; a form content type is still parsed as JSON.
    let (s, _, j) = send!(app, TestRequest::post().uri(&format!("{A}/apiKeys:verify")));
    assert_eq!(
        (s, j["error_code"].clone()),
        (StatusCode::OK, json!("VERIFICATION_ERROR_INVALID_FORMAT"))
    );
    let (s, _, j) = send!(
        app,
        TestRequest::post()
            .uri(&format!("{A}/apiKeys:verify"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(r#"{"credential":"x"}"#)
    );
    assert_eq!(
        (s, j["error_code"].clone()),
        (StatusCode::OK, json!("VERIFICATION_ERROR_NOT_FOUND"))
    );
}

#[actix_web::test]
async fn headers_health_and_version() {
    let state = state_with("").await;
    let app = app!(state);
    let (s, h, j) = send!(
        app,
        TestRequest::get()
            .uri("/health/alive")
            .insert_header(("X-Request-ID", "abc-123"))
    );
    assert_eq!((s, j), (StatusCode::OK, json!({"status": "ok"})));
    assert_eq!(h.get("x-request-id").unwrap(), "abc-123");
    assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(
        h.get("strict-transport-security").unwrap(),
        "max-age=31536000; includeSubDomains"
    );
    let (_, h, _) = send!(
        app,
        TestRequest::get()
            .uri("/health/alive")
            .insert_header(("X-Request-ID", "x".repeat(200)))
    );
    assert_ne!(
        h.get("x-request-id").unwrap().len(),
        200,
        "over-long request ids are replaced"
    );
    let (s, _, _) = send!(app, TestRequest::get().uri("/health/ready"));
    assert_eq!(s, StatusCode::OK);
    let (_, _, j) = send!(app, TestRequest::get().uri("/version"));
    assert_eq!(j["version"], "test");
}

#[actix_web::test]
async fn multitenancy_routes_by_host() {
    let nid = uuid::Uuid::new_v4();
    let state = state_with(&format!("multitenancy:\n  enabled: true\n  networks:\n    - {{ hostname: \"a.example.com\", id: \"{nid}\" }}\n")).await;
    let app = app!(state);
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "n", "actor_id": "a"})
        )
        .insert_header(("Host", "A.example.com:443"))
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "n", "actor_id": "a"})
        )
        .insert_header(("Host", "b.example.com"))
    );
    assert_envelope(s, &j, 404, "NOT_FOUND");
    assert_eq!(j["error"]["message"], "network not found");
    let (s, _, _) = send!(
        app,
        TestRequest::get()
            .uri("/health/alive")
            .insert_header(("Host", "unknown"))
    );
    assert_eq!(s, StatusCode::OK, "health never resolves a network");
}

#[actix_web::test]
async fn cors_when_enabled() {
    let base = state_with("").await;
    let state = web::Data::new(AppState {
        service: base.service.clone(),
        build: base.build.clone(),
        client_ip_source: ClientIpSource::RemoteAddr.into(),
        trust_forwarded_host: false,
        exclude_health_from_log: false.into(),
        metrics: None,
        cors: talos_http::config::CorsConfig {
            enabled: true,
            allowed_origins: vec!["https://app.example.com".into()],
            ..Default::default()
        }
        .into(),
        access: Default::default(),
        limits: base.limits,
        gateway_failures: Default::default(),
        draining: Default::default(),
    });
    let app = app!(state);
    let preflight = TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri(&format!("{A}/apiKeys:verify"))
        .insert_header(("Origin", "https://app.example.com"))
        .insert_header(("Access-Control-Request-Method", "POST"));
    let (s, h, _) = send!(app, preflight);
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    let (_, h, _) = send!(
        app,
        post(&format!("{A}/apiKeys:verify"), json!({"credential": "x"}))
            .insert_header(("Origin", "https://evil.example"))
    );
    assert!(
        h.get("access-control-allow-origin").is_none(),
        "other origins get no CORS grant"
    );
    // Disabled (the default): no CORS headers at all.
    let plain = state_with("").await;
    let app = app!(plain);
    let (_, h, _) = send!(
        app,
        post(&format!("{A}/apiKeys:verify"), json!({"credential": "x"}))
            .insert_header(("Origin", "https://app.example.com"))
    );
    assert!(h.get("access-control-allow-origin").is_none());
}

// Rate limits have their own file to keep modules small; after the macros, which they use.
#[path = "api/rate_limit.rs"]
mod rate_limit;

#[path = "api/metering.rs"]
mod metering;
#[path = "api/resilience.rs"]
mod resilience;

#[path = "api/gateway.rs"]
mod gateway;

// Last: uses the macros above, which are visible only after their definition.
#[path = "api/snapshots.rs"]
mod snapshots;
