//! `serve admin` and `serve public` as two processes on one database.

use serde_json::{Value, json};

use talos_test_support::TestApp;

use super::server;

fn assert_not_found(what: &str, (status, body): (u16, Value)) {
    assert_eq!(status, 404, "{what}: {body}");
    assert_eq!(
        body["error"]["details"][0]["reason"], "NOT_FOUND",
        "{what}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_and_public_planes_share_one_database() {
    // Bound to all interfaces: the warning depends on it. The admin plane first: it applies the
    // SQLite migrations; the public plane runs on the same configuration and database.
    let mut admin = server()
        .issuer("http://planes.test")
        .default_ttl("1h")
        .secret("planes-test-secret-0123456789abcdefghijkl")
        .host("0.0.0.0")
        .plane("admin")
        .config("self_service:\n  enabled: true\n  trusted_proxies: [\"127.0.0.1\"]\n")
        .spawn();
    let mut public = admin.spawn_another(Some("public"));
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
        let path = e.path.replace("{key_id}", kid).replace("{actor_id}", "a");
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

    // Self-service: on the public plane only; the actor comes from the trusted proxy's header.
    let self_issue = |p: &TestApp| {
        reqwest::Client::new()
            .post(format!("{}/v2alpha1/self/issuedApiKeys", p.url))
            .header("X-User-Id", "alice")
            .json(&json!({"name": "mine"}))
            .send()
    };
    let r = self_issue(&public).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let j: Value = r.json().await.unwrap();
    let (s, listed) = admin
        .call(M::GET, "/v2alpha1/admin/issuedApiKeys?actor_id=alice", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        listed["issued_api_keys"][0]["key_id"], j["issued_api_key"]["key_id"],
        "{listed}"
    );
    let r = self_issue(&admin).await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "self-service is not on the admin plane"
    );

    admin.kill();
    let admin_log = admin.log();
    assert!(
        admin_log.contains("the admin API is open"),
        "an open admin plane on a non-loopback address warns:\n{admin_log}"
    );
    public.kill();
    let public_log = public.log();
    assert!(
        !public_log.contains("the admin API is open"),
        "the public plane serves no admin API:\n{public_log}"
    );
}
