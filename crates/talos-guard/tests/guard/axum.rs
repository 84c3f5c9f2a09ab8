//! The axum example (`examples/axum.rs`): the tower layer on the in-process backend.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Embedded, axum_example, forged};

/// Sends `req` through the example's router: status, JSON body, and the response's headers.
async fn send(t: &Embedded, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
    let resp = axum_example::router(t.guard.clone())
        .oneshot(req)
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (parts.status, json, parts.headers)
}

fn request(method: &str, header: Option<(&str, &str)>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri("/invoices");
    if let Some((name, value)) = header {
        b = b.header(name, value);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_require_their_scopes() {
    let t = Embedded::new().await;
    let (_, reader) = t.issue("reader", &["invoices:read"], None).await;
    let (_, writer) = t.issue("writer", &["invoices:write"], None).await;
    let bearer = |s: &str| format!("Bearer {s}");

    let (s, j, h) = send(&t, request("GET", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(j["isValid"], false);
    assert_eq!(h["www-authenticate"], "Bearer realm=\"talos\"");

    let (s, j, _) = send(
        &t,
        request("GET", Some(("authorization", &bearer(&reader)))),
    )
    .await;
    assert_eq!(
        (s, j),
        (
            StatusCode::OK,
            json!({"actor_id": "reader", "invoices": []})
        )
    );
    let (s, _, _) = send(&t, request("GET", Some(("x-api-key", &reader)))).await;
    assert_eq!(s, StatusCode::OK, "X-API-Key");

    // Each method has its own scopes: the writer may create but not list.
    let (s, j, _) = send(
        &t,
        request("GET", Some(("authorization", &bearer(&writer)))),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(j["missingScopes"], json!(["invoices:read"]));
    let (s, j, _) = send(
        &t,
        request("POST", Some(("authorization", &bearer(&writer)))),
    )
    .await;
    assert_eq!(
        (s, j),
        (StatusCode::CREATED, json!({"created_by": "writer"}))
    );
    let (s, _, _) = send(
        &t,
        request("POST", Some(("authorization", &bearer(&reader)))),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, _, h) = send(
        &t,
        request("GET", Some(("authorization", &bearer(&forged(&reader))))),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Bearer error=\"invalid_token\"");

    let open = Request::builder()
        .uri("/health")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&t, open).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_requests_get_a_grpc_status() {
    let t = Embedded::new().await;
    let (_, reader) = t.issue("reader", &["invoices:read"], None).await;
    let grpc = |auth: Option<String>| {
        let mut b = Request::builder()
            .method("POST")
            .uri("/invoices")
            .header("content-type", "application/grpc");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::empty()).unwrap()
    };
    let (s, _, h) = send(&t, grpc(None)).await;
    assert_eq!(s, StatusCode::OK, "gRPC carries the refusal in grpc-status");
    assert_eq!(h["grpc-status"], "16", "UNAUTHENTICATED");
    let (s, _, h) = send(&t, grpc(Some(format!("Bearer {reader}")))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["grpc-status"], "7", "PERMISSION_DENIED");
    assert!(
        h["grpc-message"]
            .to_str()
            .unwrap()
            .contains("invoices:write")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_restricted_key_needs_the_client_ip() {
    use talos_guard::ClientIp;
    let t = Embedded::new().await;
    let k = t
        .service
        .issue(
            uuid::Uuid::nil(),
            talos_core::KeySpec {
                name: "ip".into(),
                actor_id: "ip".into(),
                scopes: vec!["invoices:read".into()],
                allowed_cidrs: Some(vec!["10.0.0.0/8".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let req = |ip: Option<[u8; 4]>| {
        let mut r = request("GET", Some(("x-api-key", &k.secret)));
        if let Some(ip) = ip {
            r.extensions_mut().insert(ClientIp(ip.into()));
        }
        r
    };
    assert_eq!(
        send(&t, req(None)).await.0,
        StatusCode::FORBIDDEN,
        "unknown address: closed"
    );
    assert_eq!(
        send(&t, req(Some([192, 168, 0, 1]))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(send(&t, req(Some([10, 1, 2, 3]))).await.0, StatusCode::OK);
}
