//! Gateway verify (`/gateway/verify`, forward auth for reverse proxies): where the credential
//! comes from, the 200/401/403/429 answers and their headers, required scopes, the key's rate
//! limit, the limit on failed verifications per client address, Envoy's any-method form, planes
//! and browser origins.

use std::collections::BTreeMap;

use actix_web::http::{Method, StatusCode};
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web;
use serde_json::{Value, json};
use talos_core::config::load_tree_str;
use talos_http::{Access, AppState, ClientIpSource, Plane};
use talos_test_support::{HttpSections, TestApp};

use super::{A, post, state_with};

const GW: &str = "/gateway/verify";

/// A state from `extra` config with `client_ip_source` set.
async fn state_from(extra: &str, ip_source: ClientIpSource) -> web::Data<AppState> {
    let base = TestApp::builder()
        .cache("memory")
        .config(extra)
        .app_state()
        .await;
    web::Data::new(AppState {
        client_ip_source: ip_source.into(),
        ..base
    })
}

/// Issues a key (`spec` merged over a default) and returns (key_id, secret).
macro_rules! issue {
    ($app:expr, $spec:expr) => {{
        let mut spec = json!({"name": "gw", "actor_id": "user_42", "scopes": ["read", "write"]});
        for (k, v) in $spec.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let (s, _, j) = send!($app, post(&format!("{A}/issuedApiKeys"), spec));
        assert_eq!(s, StatusCode::CREATED, "{j}");
        (
            j["issued_api_key"]["key_id"].as_str().unwrap().to_string(),
            j["secret"].as_str().unwrap().to_string(),
        )
    }};
}

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

fn bearer(req: TestRequest, secret: &str) -> TestRequest {
    req.insert_header(("Authorization", format!("Bearer {secret}")))
}

fn header<'a>(h: &'a actix_web::http::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).map_or("", |v| v.to_str().unwrap())
}

/// The 401/402/403/429 body: exactly `isValid`, `errorCode`, `errorMessage` (plus
/// `missingScopes` for a 403 on scopes).
fn assert_denial(status: StatusCode, j: &Value, want: u16, code: &str) {
    assert_eq!(status.as_u16(), want, "{j}");
    assert_eq!(j["isValid"], false, "{j}");
    assert_eq!(j["errorCode"], code, "{j}");
    assert!(j["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{j}");
}

#[actix_web::test]
async fn valid_credential_from_each_source() {
    let state = state_with("").await;
    let app = app!(state);
    let (key_id, secret) = issue!(app, json!({}));
    // Authorization: Bearer, the first time read from storage, then from the cache.
    for cache in ["MISS", "HIT"] {
        let (s, h, j) = send!(app, bearer(get(GW), &secret));
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(header(&h, "x-talos-key-id"), key_id);
        assert_eq!(header(&h, "x-talos-actor-id"), "user_42");
        assert_eq!(header(&h, "x-talos-scopes"), "read,write");
        assert_eq!(header(&h, "ory-talos-cache"), cache);
        assert!(h.get("ratelimit").is_none(), "no limiter, no counters");
        assert_eq!(j["isValid"], true);
        assert_eq!(j["isActive"], true);
        assert_eq!(j["keyId"], key_id.as_str());
        assert_eq!(j["actorId"], "user_42");
        assert_eq!(j["scopes"], json!(["read", "write"]));
        assert_eq!(j["status"], "KEY_STATUS_ACTIVE");
        assert_eq!(j["issuer"], "http://talos.test");
        assert!(j["expireTime"].is_string(), "{j}");
        assert!(
            j.get("key_id").is_none() && j.get("errorCode").is_none(),
            "{j}"
        );
    }
    // The JSON body wins over the headers; POST and GET alike.
    let (s, _, j) = send!(
        app,
        TestRequest::post()
            .uri(GW)
            .insert_header(("Authorization", "Bearer not-a-key"))
            .set_json(json!({"credential": secret}))
    );
    assert_eq!(
        (s, j["keyId"].as_str()),
        (StatusCode::OK, Some(key_id.as_str()))
    );
    // Lower-case scheme; X-API-Key; a body that is not JSON leaves it to the headers.
    for req in [
        get(GW).insert_header(("Authorization", format!("bearer {secret}"))),
        get(GW).insert_header(("X-API-Key", secret.as_str())),
        TestRequest::post()
            .uri(GW)
            .insert_header(("X-API-Key", secret.as_str()))
            .set_payload("credential=nope"),
        TestRequest::post()
            .uri(GW)
            .insert_header(("X-API-Key", secret.as_str()))
            .set_json(json!({"credential": ""})),
    ] {
        let (s, h, j) = send!(app, req);
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(header(&h, "x-talos-key-id"), key_id);
    }
    // Cache-Control is honoured as on apiKeys:verify.
    let (_, h, _) = send!(
        app,
        bearer(get(GW), &secret).insert_header(("Cache-Control", "no-store"))
    );
    assert_eq!(header(&h, "ory-talos-cache"), "SKIP");
    // Other methods on the exact path: 405 in the envelope.
    let (s, _, j) = send!(app, bearer(TestRequest::put().uri(GW), &secret));
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{j}");
}

#[actix_web::test]
async fn invalid_credentials_are_401_with_a_challenge() {
    let state = state_with("").await;
    let app = app!(state);
    let (key_id, secret) = issue!(app, json!({}));

    let (s, h, j) = send!(app, get(GW));
    assert_denial(s, &j, 401, "VERIFICATION_ERROR_INVALID_FORMAT");
    assert_eq!(header(&h, "www-authenticate"), "Bearer realm=\"talos\"");
    let (s, h, j) = send!(
        app,
        get(GW).insert_header(("Authorization", "Basic dXNlcjpwdw=="))
    );
    assert_denial(s, &j, 401, "VERIFICATION_ERROR_INVALID_FORMAT");
    assert_eq!(header(&h, "www-authenticate"), "Bearer realm=\"talos\"");

    let mut forged = secret.clone();
    forged.pop();
    forged.push(if secret.ends_with('a') { 'b' } else { 'a' });
    for (credential, code) in [
        (forged.as_str(), "VERIFICATION_ERROR_NOT_FOUND"),
        ("some-unknown-imported-key", "VERIFICATION_ERROR_NOT_FOUND"),
    ] {
        let (s, h, j) = send!(app, bearer(get(GW), credential));
        assert_denial(s, &j, 401, code);
        assert_eq!(
            header(&h, "www-authenticate"),
            "Bearer error=\"invalid_token\""
        );
        assert!(h.get("x-talos-key-id").is_none());
    }

    let (s, _, _) = send!(
        app,
        post(&format!("{A}/issuedApiKeys/{key_id}:revoke"), json!({}))
    );
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, h, j) = send!(app, bearer(get(GW), &secret));
    assert_denial(s, &j, 401, "VERIFICATION_ERROR_REVOKED");
    assert_eq!(
        header(&h, "www-authenticate"),
        "Bearer error=\"invalid_token\""
    );

    // A key restricted to other addresses: 403, no challenge.
    let (_, restricted) = issue!(
        app,
        json!({"ip_restriction": {"allowed_cidrs": ["10.0.0.0/8"]}})
    );
    let req = bearer(get(GW), &restricted).peer_addr("192.0.2.7:4000".parse().unwrap());
    let (s, h, j) = send!(app, req);
    assert_denial(s, &j, 403, "VERIFICATION_ERROR_IP_NOT_ALLOWED");
    assert!(h.get("www-authenticate").is_none());
    assert_eq!(header(&h, "cache-control"), "no-store");
    let req = bearer(get(GW), &restricted).peer_addr("10.1.2.3:4000".parse().unwrap());
    let (s, _, j) = send!(app, req);
    assert_eq!(s, StatusCode::OK, "{j}");
}

#[actix_web::test]
async fn required_scopes_from_query_and_header() {
    let state = state_with("").await;
    let app = app!(state);
    let (_, secret) = issue!(app, json!({"scopes": ["read", "orders:write"]}));
    for uri in [
        format!("{GW}?scope=read"),
        format!("{GW}?scope=read&scope=orders%3Awrite"),
    ] {
        let (s, _, j) = send!(app, bearer(get(&uri), &secret));
        assert_eq!(s, StatusCode::OK, "{uri}: {j}");
    }
    let (s, _, j) = send!(
        app,
        bearer(get(GW), &secret).insert_header(("X-Talos-Required-Scopes", "read, orders:write"))
    );
    assert_eq!(s, StatusCode::OK, "{j}");

    let (s, h, j) = send!(
        app,
        bearer(get(&format!("{GW}?scope=read&scope=admin")), &secret)
            .insert_header(("X-Talos-Required-Scopes", "billing"))
    );
    assert_eq!(s, StatusCode::FORBIDDEN, "{j}");
    assert_eq!(j["isValid"], false);
    assert!(j.get("errorCode").is_none(), "{j}");
    assert_eq!(j["missingScopes"], json!(["admin", "billing"]));
    assert_eq!(
        header(&h, "www-authenticate"),
        "Bearer error=\"insufficient_scope\", scope=\"admin billing\""
    );
    assert!(
        h.get("x-talos-key-id").is_none(),
        "no identity on a refusal"
    );
    // Required scopes never make an invalid credential anything but 401.
    let (s, _, j) = send!(app, bearer(get(&format!("{GW}?scope=admin")), "nope"));
    assert_denial(s, &j, 401, "VERIFICATION_ERROR_NOT_FOUND");
}

#[actix_web::test]
async fn rate_limited_key_is_429_with_retry_after() {
    let state = state_with("rate_limit:\n  enabled: true\n").await;
    let app = app!(state);
    let (_, secret) = issue!(
        app,
        json!({"rate_limit_policy": {"quota": "2", "window": "60s"}})
    );
    for remaining in ["1", "0"] {
        let (s, h, j) = send!(app, bearer(get(GW), &secret));
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(header(&h, "ratelimit-policy"), "\"default\";q=2;w=60");
        assert_eq!(
            header(&h, "ratelimit"),
            format!("\"default\";r={remaining}")
        );
        assert_eq!(header(&h, "cache-control"), "no-store");
        assert_eq!(j["rateLimitRemaining"], remaining);
        assert!(h.get("retry-after").is_none());
    }
    let (s, h, j) = send!(app, bearer(get(GW), &secret));
    assert_denial(s, &j, 429, "VERIFICATION_ERROR_RATE_LIMITED");
    assert_eq!(j["errorMessage"], "rate limit exceeded");
    let retry: u64 = header(&h, "retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "one interval is 30 s: {retry}");
    assert_eq!(header(&h, "ratelimit"), "\"default\";r=0");
    assert!(h.get("www-authenticate").is_none());
}

#[actix_web::test]
async fn failed_verifications_are_limited_per_client_address() {
    let extra = "serve:\n  http:\n    gateway:\n      failure_limit: { quota: 3, window: 1h }\n";
    let state = state_from(extra, ClientIpSource::XForwardedFor).await;
    let app = app!(state);
    let (_, secret) = issue!(app, json!({}));
    let from = |ip: &str, req: TestRequest| {
        req.insert_header(("X-Forwarded-For", format!("{ip}, 203.0.113.9")))
    };
    // Neither valid keys nor requests without a credential count.
    for _ in 0..5 {
        let (s, _, _) = send!(app, from("192.0.2.1", bearer(get(GW), &secret)));
        assert_eq!(s, StatusCode::OK);
        let (s, _, _) = send!(app, from("192.0.2.1", get(GW)));
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    for i in 0..3 {
        let (s, _, j) = send!(
            app,
            from("192.0.2.1", bearer(get(GW), &format!("guess-{i}")))
        );
        assert_denial(s, &j, 401, "VERIFICATION_ERROR_NOT_FOUND");
    }
    // The budget is used up: 429 without verifying, even for the right key.
    for credential in ["guess-3", secret.as_str()] {
        let (s, h, j) = send!(app, from("192.0.2.1", bearer(get(GW), credential)));
        assert_denial(s, &j, 429, "VERIFICATION_ERROR_RATE_LIMITED");
        assert_eq!(
            j["errorMessage"],
            talos_api::gateway::TOO_MANY_FAILURES_MESSAGE
        );
        let retry: u64 = header(&h, "retry-after").parse().unwrap();
        assert!((1..=1200).contains(&retry), "{retry}");
        assert!(h.get("x-talos-key-id").is_none());
    }
    // Another address (the leftmost X-Forwarded-For entry is the client) is unaffected.
    let (s, _, _) = send!(app, from("192.0.2.2", bearer(get(GW), &secret)));
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = send!(app, from("192.0.2.2", bearer(get(GW), "guess")));
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // apiKeys:verify (admin plane) is not limited by it.
    let (s, _, j) = send!(
        app,
        from(
            "192.0.2.1",
            post(
                &format!("{A}/apiKeys:verify"),
                json!({"credential": secret})
            )
        )
    );
    assert_eq!((s, j["is_valid"].clone()), (StatusCode::OK, json!(true)));

    // quota 0 turns it off.
    let extra = "serve:\n  http:\n    gateway:\n      failure_limit: { quota: 0 }\n";
    let state = state_from(extra, ClientIpSource::RemoteAddr).await;
    let app = app!(state);
    for i in 0..30 {
        let (s, _, _) = send!(app, bearer(get(GW), &format!("guess-{i}")));
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // A window under a second is a configuration error.
    let yaml = "credentials:\n  issuer: \"http://t\"\nserve:\n  http:\n    gateway:\n      failure_limit: { quota: 1, window: 500ms }\n";
    let err = load_tree_str::<HttpSections>(yaml, "t.yaml", &BTreeMap::new())
        .err()
        .unwrap();
    assert!(err.to_string().contains("failure_limit.window"), "{err}");
}

#[actix_web::test]
async fn envoy_form_takes_any_method_and_ignores_the_query() {
    let state = state_with("").await;
    let app = app!(state);
    let (key_id, secret) = issue!(app, json!({"scopes": ["read"]}));
    for method in [
        Method::GET,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
    ] {
        let req = TestRequest::default()
            .method(method.clone())
            .uri(&format!("{GW}/api/orders/7?scope=admin"));
        let (s, h, _) = send!(app, bearer(req, &secret));
        assert_eq!(s, StatusCode::OK, "{method}");
        assert_eq!(header(&h, "x-talos-key-id"), key_id, "{method}");
    }
    // The body is the client's: never a credential here.
    let (s, _, j) = send!(
        app,
        TestRequest::post()
            .uri(&format!("{GW}/upload"))
            .set_json(json!({"credential": secret}))
    );
    assert_denial(s, &j, 401, "VERIFICATION_ERROR_INVALID_FORMAT");
    let (s, _, j) = send!(
        app,
        bearer(TestRequest::delete().uri(&format!("{GW}/x")), &secret)
            .insert_header(("X-Talos-Required-Scopes", "admin"))
    );
    assert_eq!(s, StatusCode::FORBIDDEN, "{j}");
}

#[actix_web::test]
async fn public_plane_serves_it_to_browsers_too() {
    for (plane, served) in [
        (Plane::Public, true),
        (Plane::Admin, false),
        (Plane::All, true),
    ] {
        let base = state_with("").await;
        let state = web::Data::new(AppState {
            service: base.service.clone(),
            build: base.build.clone(),
            client_ip_source: ClientIpSource::RemoteAddr.into(),
            trust_forwarded_host: false,
            exclude_health_from_log: false.into(),
            metrics: None,
            cors: Default::default(),
            access: Access::new(plane),
            limits: base.limits,
            gateway_failures: Default::default(),
            draining: Default::default(),
        });
        let app = app!(state);
        for uri in [GW.to_string(), format!("{GW}/any/path")] {
            // A proxy relays its client's `Origin`; CORS is off, and gateway verify answers anyway.
            let (s, h, j) = send!(
                app,
                get(&uri)
                    .insert_header(("Authorization", "Bearer nope"))
                    .insert_header(("Origin", "https://app.example.com"))
            );
            if served {
                assert_denial(s, &j, 401, "VERIFICATION_ERROR_NOT_FOUND");
                assert!(h.get("www-authenticate").is_some());
            } else {
                assert_eq!(s, StatusCode::NOT_FOUND, "{plane:?} {uri}: {j}");
                assert_eq!(j["error"]["code"], 404);
            }
        }
    }
}
