//! Admin tokens: every admin route × {no token, wrong token, each scope} → 401 / 403 / success.

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web;
use serde_json::{Value, json};
use talos_http::AppState;
use talos_http::endpoints::{ENDPOINTS, Method};
use talos_test_support::TestApp;

const SCOPES: &[&str] = &[
    "admin",
    "keys:read",
    "keys:write",
    "keys:verify",
    "usage:write",
];

fn token_for(scope: &str) -> String {
    format!("talos_admin_test_{}", scope.replace(':', "_"))
}

async fn state() -> web::Data<AppState> {
    SCOPES
        .iter()
        .fold(TestApp::builder().quickstart_jwks(), |b, s| {
            b.admin_token(&format!("tok-{s}"), &token_for(s), &[s])
        })
        .state()
        .await
}

/// A request body that succeeds for each admin operation; a new admin route must be added here.
fn body(op: &str, secret: &str, n: usize) -> Option<Value> {
    let raw = format!("sk_test_admin_auth_{n}_0123456789");
    Some(match op {
        "IssueApiKey" => json!({"name": "n", "actor_id": "a", "ttl": "1h"}),
        "UpdateIssuedApiKey" | "UpdateImportedApiKey" => json!({"name": "renamed"}),
        "RotateIssuedApiKey" | "RevokeIssuedApiKey" | "RevokeImportedApiKey" | "RevokeApiKey" => {
            json!({})
        }
        "ImportApiKey" => json!({"raw_key": raw, "name": "n", "actor_id": "a", "ttl": "1h"}),
        "BatchCreateImportedApiKeys" | "BatchImportApiKeys" => {
            json!({"requests": [{"raw_key": raw, "name": "n", "actor_id": "a", "ttl": "1h"}]})
        }
        "VerifyApiKey" => json!({"credential": secret}),
        "IngestUsage" => json!({"actor_id": "a", "cost_micros": 1}),
        "SetActorQuota" => json!({"actor_id": "a", "quota_micros": "1000"}),
        "TopUpActorBalance" => json!({"actor_id": "a", "amount_micros": 5}),
        "BatchVerifyApiKeys" => json!({"requests": [{"credential": secret}]}),
        "DeriveToken" => json!({"credential": secret, "algorithm": "TOKEN_ALGORITHM_JWT"}),
        "ListIssuedApiKeys"
        | "GetIssuedApiKey"
        | "ListImportedApiKeys"
        | "GetImportedApiKey"
        | "DeleteImportedApiKey"
        | "GetActorBalance" => return None,
        other => panic!("add a request body for the admin operation {other}"),
    })
}

fn allowed(scope: &str, path: &str, method: Method) -> bool {
    let rest = path.strip_prefix("/v2alpha1/admin/").unwrap();
    let verify = ["apiKeys:verify", "apiKeys:batchVerify", "apiKeys:derive"].contains(&rest);
    let usage = rest.starts_with("usage:") || rest.starts_with("actorBalances");
    let keys = !verify && !usage;
    match scope {
        "admin" => true,
        "keys:verify" => verify,
        "usage:write" => usage,
        "keys:read" => keys && method == Method::Get,
        "keys:write" => keys && method != Method::Get,
        _ => false,
    }
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

#[actix_web::test]
async fn every_admin_route_needs_a_token_with_its_scope() {
    let state = state().await;
    let app = init_service(talos_http::app(state.clone())).await;
    let admin = format!("Bearer {}", token_for("admin"));
    let mut n = 0;
    let mut checked = 0;
    for e in ENDPOINTS
        .iter()
        .filter(|e| e.path.starts_with("/v2alpha1/admin/"))
    {
        let cases = [None, Some("talos_admin_wrong".to_string())]
            .into_iter()
            .map(|t| (None, t))
            .chain(SCOPES.iter().map(|s| (Some(*s), Some(token_for(s)))));
        for (scope, token) in cases {
            n += 1;
            // Fresh keys per request, so revoke, rotate and delete can succeed every time.
            let (s, _, issued) = send!(
                app,
                TestRequest::post()
                    .uri("/v2alpha1/admin/issuedApiKeys")
                    .insert_header(("authorization", admin.as_str()))
                    .set_json(json!({"name": "n", "actor_id": "a"}))
            );
            assert_eq!(s, StatusCode::CREATED, "{issued}");
            let (s, _, imported) = send!(
                app,
                TestRequest::post()
                    .uri("/v2alpha1/admin/importedApiKeys")
                    .insert_header(("authorization", admin.as_str()))
                    .set_json(json!({"raw_key": format!("sk_setup_{n}_0123456789"), "name": "n", "actor_id": "a"}))
            );
            assert_eq!(s, StatusCode::CREATED, "{imported}");
            let id = if e.path.contains("importedApiKeys") {
                imported["key_id"].as_str().unwrap()
            } else {
                issued["issued_api_key"]["key_id"].as_str().unwrap()
            };
            let path = e.path.replace("{key_id}", id).replace("{actor_id}", "a");
            let mut req = match e.method {
                Method::Get | Method::Any => TestRequest::get(),
                Method::Post => TestRequest::post(),
                Method::Patch => TestRequest::patch(),
                Method::Delete => TestRequest::delete(),
            }
            .uri(&path);
            if let Some(b) = body(e.operation_id, issued["secret"].as_str().unwrap(), n) {
                req = req.set_json(b);
            }
            if let Some(t) = &token {
                req = req.insert_header(("authorization", format!("Bearer {t}")));
            }
            let (status, headers, j) = send!(app, req);
            let what = format!("{} {} with {scope:?}: {j}", e.operation_id, path);
            match scope {
                None => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                    assert_eq!(
                        j["error"]["details"][0]["reason"], "UNAUTHENTICATED",
                        "{what}"
                    );
                    assert_eq!(
                        headers.get("www-authenticate").unwrap(),
                        "Bearer realm=\"talos\"",
                        "{what}"
                    );
                }
                Some(s) if allowed(s, e.path, e.method) => {
                    assert_eq!(status.as_u16(), e.success.0, "{what}");
                    checked += 1;
                }
                Some(_) => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                    assert_eq!(
                        j["error"]["details"][0]["reason"], "PERMISSION_DENIED",
                        "{what}"
                    );
                }
            }
        }
    }
    assert!(
        checked >= 2 * 17,
        "every admin route succeeded with admin and its own scope"
    );
}

#[actix_web::test]
async fn public_routes_and_malformed_headers() {
    let state = state().await;
    let app = init_service(talos_http::app(state.clone())).await;
    for path in [
        "/health/alive",
        "/version",
        "/openapi.json",
        "/.well-known/jwks.json",
        "/v2alpha1/derivedKeys/jwks.json",
    ] {
        let (s, _, j) = send!(app, TestRequest::get().uri(path));
        assert_eq!(s, StatusCode::OK, "{path} never needs a token: {j}");
    }
    let (s, _, j) = send!(
        app,
        TestRequest::post()
            .uri("/v2alpha1/apiKeys:selfRevoke")
            .set_json(json!({"credential": "talos_v1_nope_nope"}))
    );
    assert_ne!(
        s,
        StatusCode::UNAUTHORIZED,
        "self-revoke needs no admin token: {j}"
    );
    let good = token_for("admin");
    for header in [
        good.clone(),              // no scheme
        format!("Basic {good}"),   // wrong scheme
        "Bearer ".to_string(),     // empty token
        format!("Bearer {good}x"), // one character off
        format!("Bearer {}", &good[1..]),
    ] {
        let (s, h, j) = send!(
            app,
            TestRequest::get()
                .uri("/v2alpha1/admin/issuedApiKeys")
                .insert_header(("authorization", header.as_str()))
        );
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{header}: {j}");
        assert!(h.get("www-authenticate").is_some());
        assert!(
            !j.to_string().contains(&good),
            "the body never echoes a token"
        );
    }
    let (s, _, j) = send!(
        app,
        TestRequest::get()
            .uri("/v2alpha1/admin/issuedApiKeys")
            .insert_header(("authorization", format!("bearer  {good} ")))
    );
    assert_eq!(s, StatusCode::OK, "scheme is case-insensitive: {j}");
}
