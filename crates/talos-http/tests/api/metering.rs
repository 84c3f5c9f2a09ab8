//! Metering over HTTP: key credits on issue, update and verify; usage ingestion and actor
//! balances; self-service behind a trusted proxy, scoped to the caller.

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web;
use serde_json::{Value, json};
use talos_http::{Access, AppState, Plane, SelfService, SelfServiceConfig};
use talos_test_support::TestApp;

use super::{A, assert_envelope, post, state_with};

const SELF: &str = "/v2alpha1/self";
const PROXY: &str = "10.0.0.7:40000";

/// The state with self-service on, trusting 10.0.0.0/8, serving `plane`.
async fn self_service_state(plane: Plane) -> web::Data<AppState> {
    let state = TestApp::builder()
        .default_ttl("720h")
        .cache("memory")
        .app_state()
        .await;
    let self_service = SelfService::from_config(&SelfServiceConfig {
        enabled: true,
        trusted_proxies: vec!["10.0.0.0/8".into()],
        ..Default::default()
    });
    web::Data::new(AppState {
        access: Access::new(plane).with_self_service(self_service),
        ..state
    })
}

/// A self-service request from the trusted proxy, on behalf of `user`.
fn as_user(req: TestRequest, user: &str) -> TestRequest {
    req.peer_addr(PROXY.parse().unwrap())
        .insert_header(("X-User-Id", user))
}

#[actix_web::test]
async fn credits_on_issue_update_and_verify() {
    let state = state_with("").await;
    let app = app!(state);
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "n", "actor_id": "a", "credits": {"remaining": 2, "refill": {"amount": "10", "interval": "monthly"}}})
        )
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let credits = &j["issued_api_key"]["credits"];
    assert_eq!(credits["remaining"], "2", "{j}");
    assert_eq!(
        credits["refill"],
        json!({"amount": "10", "interval": "monthly"})
    );
    let kid = j["issued_api_key"]["key_id"].as_str().unwrap().to_string();
    let secret = j["secret"].as_str().unwrap().to_string();
    let verify = |cost: Value| {
        let mut body = json!({"credential": secret});
        if !cost.is_null() {
            body["cost"] = cost;
        }
        post(&format!("{A}/apiKeys:verify"), body)
    };

    let (s, h, j) = send!(app, verify(Value::Null));
    assert_eq!((s, &j["is_valid"]), (StatusCode::OK, &json!(true)), "{j}");
    assert_eq!(j["credits_remaining"], "1");
    assert_eq!(
        h.get("cache-control").unwrap(),
        "no-store",
        "a balance is never cached downstream"
    );
    let (_, _, j) = send!(app, verify(json!("0")));
    assert_eq!(
        (&j["is_valid"], &j["credits_remaining"]),
        (&json!(true), &json!("1"))
    );
    let (_, _, j) = send!(app, verify(json!(5)));
    assert_eq!(j["error_code"], "VERIFICATION_ERROR_USAGE_EXCEEDED", "{j}");
    assert_eq!(j["credits_remaining"], "1");
    assert_eq!(j["key_id"], "", "identity fields are zero on failure");
    let (s, _, j) = send!(app, verify(json!(-1)));
    assert_envelope(s, &j, 400, "BAD_REQUEST");
    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:batchVerify"),
            json!({"requests": [{"credential": secret, "cost": 1}, {"credential": secret}]})
        )
    );
    let codes: Vec<&Value> = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["error_code"])
        .collect();
    assert_eq!(
        codes,
        [&Value::Null, &json!("VERIFICATION_ERROR_USAGE_EXCEEDED")],
        "{j}"
    );

    // Update by mask: new credits restart the balance; the mask without a value removes them.
    let patch = |body: Value, mask: &str| {
        TestRequest::patch()
            .uri(&format!("{A}/issuedApiKeys/{kid}?update_mask={mask}"))
            .set_json(body)
    };
    let (s, _, j) = send!(
        app,
        patch(json!({"credits": {"remaining": "7"}}), "credits")
    );
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["credits"]["remaining"], "7");
    let (_, _, j) = send!(app, verify(Value::Null));
    assert_eq!(
        j["credits_remaining"], "6",
        "the update evicted the cached row: {j}"
    );
    let (_, _, j) = send!(app, patch(json!({}), "credits"));
    assert!(j.get("credits").is_none(), "{j}");
    let (_, h, j) = send!(app, verify(Value::Null));
    assert!(j.get("credits_remaining").is_none(), "{j}");
    assert!(h.get("cache-control").is_none());

    // Imported keys take credits too, on import and batch import.
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/importedApiKeys"),
            json!({"raw_key": "sk_live_metered_0001", "name": "n", "actor_id": "a", "credits": {"remaining": 1}})
        )
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_eq!(j["credits"]["remaining"], "1", "{j}");
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/importedApiKeys:batchImport"),
            json!({"keys": [{"raw_key": "sk_live_metered_0002", "name": "n", "actor_id": "a", "credits": {"remaining": "4"}}]})
        )
    );
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(
        j["results"][0]["imported_api_key"]["credits"]["remaining"], "4",
        "{j}"
    );
    for (raw, left) in [("sk_live_metered_0001", "0"), ("sk_live_metered_0002", "3")] {
        let (_, _, j) = send!(
            app,
            post(&format!("{A}/apiKeys:verify"), json!({"credential": raw}))
        );
        assert_eq!(
            (&j["is_valid"], &j["credits_remaining"]),
            (&json!(true), &json!(left)),
            "{j}"
        );
    }
    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:verify"),
            json!({"credential": "sk_live_metered_0001"})
        )
    );
    assert_eq!(j["error_code"], "VERIFICATION_ERROR_USAGE_EXCEEDED", "{j}");

    for (bad, field) in [
        (json!({"remaining": -1}), "credits.remaining"),
        (json!({"refill": {"amount": 5}}), "credits.refill.interval"),
        (
            json!({"refill": {"amount": 0, "interval": "daily"}}),
            "credits.refill.amount",
        ),
        (
            json!({"refill": {"amount": 5, "interval": "hourly"}}),
            "credits.refill.interval",
        ),
        (json!({}), "credits.remaining"),
    ] {
        let (s, _, j) = send!(
            app,
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"name": "n", "actor_id": "a", "credits": bad})
            )
        );
        assert_envelope(s, &j, 400, "BAD_REQUEST");
        let msg = j["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{msg} should name {field}");
    }
}

#[actix_web::test]
async fn usage_ingestion_and_actor_balances() {
    let state = state_with("").await;
    let app = app!(state);
    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "n", "actor_id": "acme"})
        )
    );
    let secret = j["secret"].as_str().unwrap().to_string();
    let verify = || {
        post(
            &format!("{A}/apiKeys:verify"),
            json!({"credential": secret}),
        )
    };
    let (_, _, j) = send!(app, verify());
    assert!(
        j.get("balance_quota").is_none(),
        "no quota, no balance fields: {j}"
    );

    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/actorBalances:setQuota"),
            json!({"actor_id": "acme", "quota_micros": 100})
        )
    );
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(
        j,
        json!({"actor_id": "acme", "quota_micros": "100", "remaining_micros": "100"})
    );
    let (_, _, j) = send!(app, verify());
    assert_eq!(
        (&j["balance_remaining"], &j["balance_quota"]),
        (&json!("100"), &json!("100")),
        "{j}"
    );

    let ingest = |request_id: &str| {
        post(
            &format!("{A}/usage:ingest"),
            json!({"actor_id": "acme", "usage_type": "tokens", "usage_amount": "12", "cost_micros": 100, "model": "m", "request_id": request_id}),
        )
    };
    let (s, _, j) = send!(app, ingest("req-1"));
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(
        j,
        json!({"balance_remaining": "0", "balance_quota": "100", "accepted": true})
    );
    let (_, _, j) = send!(app, ingest("req-1"));
    assert_eq!(j["accepted"], false);
    let (_, _, j) = send!(app, verify());
    assert_eq!(
        j["error_code"], "VERIFICATION_ERROR_BALANCE_EXHAUSTED",
        "{j}"
    );
    assert_eq!(j["balance_remaining"], "0");

    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/actorBalances:topUp"),
            json!({"actor_id": "acme", "amount_micros": "50"})
        )
    );
    assert_eq!(j["remaining_micros"], "50", "{j}");
    let (s, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/actorBalances/acme"))
    );
    assert_eq!((s, &j["remaining_micros"]), (StatusCode::OK, &json!("50")));
    let (_, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/actorBalances/nobody"))
    );
    assert_eq!(
        j,
        json!({"actor_id": "nobody", "quota_micros": "0", "remaining_micros": "0"})
    );
    assert_eq!(send!(app, verify()).2["is_valid"], true);

    for (path, body) in [
        ("usage:ingest", json!({"cost_micros": 1})),
        ("usage:ingest", json!({"actor_id": "a", "cost_micros": -5})),
        ("usage:ingest", json!({"actor_id": "a", "cost_micros": "x"})),
        (
            "usage:ingest",
            json!({"actor_id": "a", "request_id": "r".repeat(37)}),
        ),
        ("actorBalances:setQuota", json!({"actor_id": "a"})),
        (
            "actorBalances:setQuota",
            json!({"actor_id": "a", "quota_micros": -1}),
        ),
        (
            "actorBalances:topUp",
            json!({"actor_id": "a", "amount_micros": 0}),
        ),
    ] {
        let (s, _, j) = send!(app, post(&format!("{A}/{path}"), body.clone()));
        assert_envelope(s, &j, 400, "BAD_REQUEST");
    }
}

#[actix_web::test]
async fn self_service_is_scoped_to_the_proxied_actor() {
    let state = self_service_state(Plane::Public).await;
    let app = app!(state);
    let issue = |user: &str| {
        as_user(
            TestRequest::post().uri(&format!("{SELF}/issuedApiKeys")),
            user,
        )
        .set_json(json!({"name": "laptop", "ttl": "1d"}))
    };
    let (s, h, alice) = send!(app, issue("alice"));
    assert_eq!(s, StatusCode::CREATED, "{alice}");
    assert_eq!(alice["issued_api_key"]["actor_id"], "alice");
    let alice_id = alice["issued_api_key"]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        h.get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with(&alice_id)
    );
    let (_, _, bob) = send!(app, issue("bob"));
    let bob_id = bob["issued_api_key"]["key_id"]
        .as_str()
        .unwrap()
        .to_string();

    let list = |user: &str| {
        as_user(
            TestRequest::get().uri(&format!("{SELF}/issuedApiKeys?page_size=10")),
            user,
        )
    };
    let (s, _, j) = send!(app, list("alice"));
    assert_eq!(s, StatusCode::OK, "{j}");
    let ids: Vec<&str> = j["issued_api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [alice_id.as_str()]);

    // Bob's revoke of Alice's key: not found, and her key still verifies.
    let revoke = |user: &str, id: &str| {
        as_user(
            TestRequest::post().uri(&format!("{SELF}/issuedApiKeys/{id}:revoke")),
            user,
        )
        .set_json(json!({"reason": "REVOCATION_REASON_KEY_COMPROMISE"}))
    };
    let (s, _, j) = send!(app, revoke("bob", &alice_id));
    assert_envelope(s, &j, 404, "API_KEY_NOT_FOUND");
    let (s, _, j) = send!(app, revoke("alice", &alice_id));
    assert_eq!(s, StatusCode::NO_CONTENT, "{j}");
    let (s, _, _) = send!(app, revoke("bob", &bob_id));
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (s, _, j) = send!(
        app,
        as_user(
            TestRequest::get().uri(&format!("{SELF}/actorBalance")),
            "alice"
        )
    );
    assert_eq!(
        (s, &j["actor_id"]),
        (StatusCode::OK, &json!("alice")),
        "{j}"
    );
    let (s, _, j) = send!(
        app,
        as_user(
            TestRequest::get().uri(&format!("{SELF}/usageHistory?limit=5")),
            "alice"
        )
    );
    assert_eq!(
        (s, &j["usage_records"]),
        (StatusCode::OK, &json!([])),
        "{j}"
    );
    let (s, _, j) = send!(
        app,
        as_user(
            TestRequest::get().uri(&format!("{SELF}/usageHistory?limit=x")),
            "alice"
        )
    );
    assert_envelope(s, &j, 400, "BAD_REQUEST");

    // Only the trusted proxy may name the user; and it must name one.
    let untrusted = TestRequest::get()
        .uri(&format!("{SELF}/issuedApiKeys"))
        .peer_addr("192.168.1.5:5000".parse().unwrap())
        .insert_header(("X-User-Id", "alice"));
    let (s, _, j) = send!(app, untrusted);
    assert_envelope(s, &j, 403, "PERMISSION_DENIED");
    let (s, _, j) = send!(
        app,
        TestRequest::get()
            .uri(&format!("{SELF}/actorBalance"))
            .peer_addr(PROXY.parse().unwrap())
    );
    assert_envelope(s, &j, 401, "UNAUTHENTICATED");
    // The admin routes are not on the public plane.
    let (s, _, j) = send!(
        app,
        TestRequest::get().uri(&format!("{A}/actorBalances/alice"))
    );
    assert_envelope(s, &j, 404, "NOT_FOUND");
}

#[actix_web::test]
async fn self_service_is_off_by_default_and_not_on_the_admin_plane() {
    let state = state_with("").await;
    let app = app!(state);
    let req = as_user(
        TestRequest::get().uri(&format!("{SELF}/actorBalance")),
        "alice",
    );
    let (s, _, j) = send!(app, req);
    assert_envelope(s, &j, 404, "NOT_FOUND");
    let state = self_service_state(Plane::Admin).await;
    let app = app!(state);
    let req = as_user(
        TestRequest::get().uri(&format!("{SELF}/actorBalance")),
        "alice",
    );
    let (s, _, j) = send!(app, req);
    assert_envelope(s, &j, 404, "NOT_FOUND");
}
