//! Input floors and bounds from issue 11: TTL floor, malformed update masks, bounded metric
//! labels, request deadlines, load shedding, readiness.

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use serde_json::{Value, json};

use super::{A, assert_envelope, post, state_with};

/// TTLs under one second (keys, imports, derived tokens) are 400, not an already-expired credential.
#[actix_web::test]
async fn ttl_below_one_second_is_refused() {
    let state = state_with("").await;
    let app = app!(state);
    for ttl in ["500ms", "1ns", "999ms", "0s"] {
        let (s, _, j) = send!(
            app,
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"name": "n", "actor_id": "a", "ttl": ttl})
            )
        );
        assert_envelope(s, &j, 400, "BAD_REQUEST");
        let (s, _, j) = send!(
            app,
            post(
                &format!("{A}/importedApiKeys"),
                json!({"raw_key": format!("legacy-{ttl}"), "name": "n", "actor_id": "a", "ttl": ttl})
            )
        );
        assert_envelope(s, &j, 400, "BAD_REQUEST");
    }
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "n", "actor_id": "a", "ttl": "1s"})
        )
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let secret = j["secret"].as_str().unwrap().to_string();
    for ttl in ["500ms", "1ns"] {
        let (s, _, j) = send!(
            app,
            post(
                &format!("{A}/apiKeys:derive"),
                json!({"credential": secret, "ttl": ttl})
            )
        );
        assert_envelope(s, &j, 400, "BAD_REQUEST");
    }
}

/// A mask whose paths are not strings, or are empty, is malformed (400), not "no mask".
#[actix_web::test]
async fn malformed_update_masks_are_refused() {
    let state = state_with("").await;
    let app = app!(state);
    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "n", "actor_id": "a", "scopes": ["r"]})
        )
    );
    let kid = j["issued_api_key"]["key_id"].as_str().unwrap().to_string();
    for (query, body) in [
        ("", json!({"update_mask": {"paths": [1, 2]}, "name": "x"})),
        (
            "",
            json!({"update_mask": {"paths": ["name", null]}, "name": "x"}),
        ),
        ("?update_mask=,,,", json!({"name": "x"})),
        ("?update_mask=name,", json!({"name": "x"})),
        ("", json!({"update_mask": ",", "name": "x"})),
    ] {
        let (s, _, j) = send!(
            app,
            TestRequest::patch()
                .uri(&format!("{A}/issuedApiKeys/{kid}{query}"))
                .set_json(body.clone())
        );
        assert_envelope(s, &j, 400, "BAD_REQUEST");
    }
    // An empty mask is still "no mask".
    for (query, body) in [
        ("?update_mask=", json!({"name": "y"})),
        ("", json!({"update_mask": {"paths": []}, "name": "y"})),
        ("", json!({"update_mask": "", "name": "y"})),
    ] {
        let (s, _, j) = send!(
            app,
            TestRequest::patch()
                .uri(&format!("{A}/issuedApiKeys/{kid}{query}"))
                .set_json(body.clone())
        );
        assert_eq!(
            (s, j["name"].clone()),
            (StatusCode::OK, json!("y")),
            "{body}"
        );
    }
}
