//! Snapshots (insta) of what clients parse: the error envelope of each documented failure and
//! the verify body of each outcome. Values that change per run (ids, times, secrets) are
//! redacted; everything else (field names, enum strings, codes, omitted fields) is pinned, so a
//! wire change shows up as a reviewed snapshot diff. Update with `cargo insta review` (or
//! `INSTA_UPDATE=always`) after a deliberate change.

use super::*;

/// Redactions for the fields that differ per run.
macro_rules! snap {
    ($name:expr, $value:expr) => {
        insta::assert_json_snapshot!($name, $value, {
            // An empty key_id (a credential that matched no key) stays visible.
            ".**.key_id" => insta::dynamic_redaction(|v, _| {
                if v.as_str() == Some("") { v } else { "[key_id]".into() }
            }),
            ".**.expire_time" => "[time]",
            ".**.create_time" => "[time]",
            ".**.update_time" => "[time]",
            ".**.request_id" => "[request_id]",
            ".**.rate_limit.reset_time" => "[time]",
        })
    };
}

/// Issues a key; returns its id and secret.
macro_rules! issue {
    ($app:expr, $body:expr) => {{
        let (s, _, j) = send!($app, post(&format!("{A}/issuedApiKeys"), $body));
        assert_eq!(s, StatusCode::CREATED, "{j}");
        (
            j["issued_api_key"]["key_id"].as_str().unwrap().to_string(),
            j["secret"].as_str().unwrap().to_string(),
        )
    }};
}

#[actix_web::test]
async fn error_envelopes() {
    let state = state_with("").await;
    let app = app!(state);
    let missing = "00000000-0000-7000-8000-000000000000";
    let cases: Vec<(&str, TestRequest)> = vec![
        (
            "not_found",
            TestRequest::get().uri(&format!("{A}/issuedApiKeys/{missing}")),
        ),
        (
            "invalid_ttl",
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"actor_id": "u", "ttl": "soon"}),
            ),
        ),
        (
            "malformed_json",
            TestRequest::post()
                .uri(&format!("{A}/issuedApiKeys"))
                .insert_header(("content-type", "application/json"))
                .set_payload("{"),
        ),
        (
            "unknown_route",
            TestRequest::get().uri("/v2alpha1/admin/nothing"),
        ),
        (
            "bad_filter",
            TestRequest::get().uri(&format!("{A}/issuedApiKeys?filter=colour%3Dblue")),
        ),
        (
            "revoke_unknown",
            post(&format!("{A}/issuedApiKeys/{missing}:revoke"), json!({})),
        ),
    ];
    for (name, req) in cases {
        let (_, _, j) = send!(app, req);
        snap!(format!("error_{name}"), &j);
    }
}

#[actix_web::test]
async fn verify_bodies() {
    let state = state_with("").await;
    let app = app!(state);
    let verify = |credential: &str| {
        post(
            &format!("{A}/apiKeys:verify"),
            json!({ "credential": credential }),
        )
    };

    let (_, valid) = issue!(
        app,
        json!({"name": "svc", "actor_id": "u1", "scopes": ["read"], "ttl": "1d", "metadata": {"team": "a"}})
    );
    let (_, _, j) = send!(app, verify(&valid));
    snap!("verify_valid", &j);

    let (kid, revoked) = issue!(app, json!({"name": "old", "actor_id": "u2", "ttl": "1d"}));
    let (s, _, _) = send!(
        app,
        post(&format!("{A}/issuedApiKeys/{kid}:revoke"), json!({}))
    );
    assert!(s.is_success());
    let (_, _, j) = send!(app, verify(&revoked));
    snap!("verify_revoked", &j);

    // One character changed in the checksum part: rejected before any lookup.
    let mut forged = valid.clone().into_bytes();
    let at = forged.len() - 3;
    forged[at] = if forged[at] == b'2' { b'3' } else { b'2' };
    let (_, _, j) = send!(app, verify(std::str::from_utf8(&forged).unwrap()));
    snap!("verify_forged", &j);

    let (_, _, j) = send!(app, verify("sk_live_not_a_talos_key"));
    snap!("verify_unknown_imported", &j);

    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/importedApiKeys"),
            json!({"name": "legacy", "actor_id": "u3", "raw_key": "sk_live_legacy_0123456789abcdef", "ttl": "1d"})
        )
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let (_, _, j) = send!(app, verify("sk_live_legacy_0123456789abcdef"));
    snap!("verify_imported_valid", &j);
}
