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

/// Sends a POST whose body never arrives (a declared length, no bytes), guarded so that the old
/// behaviour (waiting forever) fails the test instead of hanging it.
macro_rules! send_stalled_body {
    ($app:expr, $path:expr) => {{
        let mut req = TestRequest::post()
            .uri($path)
            .insert_header(("content-type", "application/json"))
            .insert_header(("content-length", "100"))
            .to_request();
        let pending: std::pin::Pin<
            Box<
                dyn futures_util::Stream<
                        Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>,
                    >,
            >,
        > = Box::pin(futures_util::stream::pending());
        *req.payload() = actix_web::dev::Payload::from(pending);
        // The deadline answers with an error that actix renders; render it the same way here.
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            actix_web::test::try_call_service(&$app, req),
        )
        .await
        .expect("the request was never answered")
        .map(|r| r.into_parts().1.map_into_boxed_body())
        .unwrap_or_else(|e| e.error_response());
        let status = resp.status();
        let body = actix_web::body::to_bytes(resp.into_body())
            .await
            .unwrap_or_default();
        let json: Value = serde_json::from_slice(&body).expect("JSON body");
        (status, json)
    }};
}

/// A request still running after `serve.http.request_timeout` is answered 503
/// `DEADLINE_EXCEEDED` in the error envelope.
#[actix_web::test]
async fn request_past_its_deadline_is_answered_503() {
    let state =
        state_with("serve:\n  http:\n    request_timeout: 1s\n    client_timeout: 1h\n").await;
    let app = app!(state);
    let (s, j) = send_stalled_body!(app, &format!("{A}/issuedApiKeys"));
    assert_envelope(s, &j, 503, "DEADLINE_EXCEEDED");
}

/// A body that does not arrive within `serve.http.client_timeout` is answered 408 and the
/// connection is closed.
#[actix_web::test]
async fn slow_body_is_cut_after_the_client_timeout() {
    let state =
        state_with("serve:\n  http:\n    request_timeout: 1h\n    client_timeout: 1s\n").await;
    let app = app!(state);
    let (s, j) = send_stalled_body!(app, &format!("{A}/apiKeys:verify"));
    assert_envelope(s, &j, 408, "REQUEST_TIMEOUT");
}

/// A POST to `$path` whose body never arrives: it stays in flight until dropped.
macro_rules! stalled_request {
    ($path:expr) => {{
        let mut req = TestRequest::post()
            .uri($path)
            .insert_header(("content-type", "application/json"))
            .insert_header(("content-length", "100"))
            .to_request();
        let pending: std::pin::Pin<
            Box<
                dyn futures_util::Stream<
                        Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>,
                    >,
            >,
        > = Box::pin(futures_util::stream::pending());
        *req.payload() = actix_web::dev::Payload::from(pending);
        req
    }};
}

/// Beyond `serve.http.max_inflight` requests in flight, a request is answered at once with 503
/// `OVERLOADED` and `Retry-After: 1`; once the others finish, requests are admitted again.
#[actix_web::test]
async fn requests_beyond_max_inflight_are_shed() {
    use actix_web::dev::Service;

    let state = state_with("serve:\n  http:\n    max_inflight: 2\n").await;
    let app = app!(state);
    let mut first = Box::pin(app.call(stalled_request!(&format!("{A}/apiKeys:verify"))));
    let mut second = Box::pin(app.call(stalled_request!(&format!("{A}/apiKeys:verify"))));
    assert!(futures_util::poll!(&mut first).is_pending());
    assert!(futures_util::poll!(&mut second).is_pending());
    let verify = || post(&format!("{A}/apiKeys:verify"), json!({"credential": "x"}));
    let (s, h, j) = send!(app, verify());
    assert_envelope(s, &j, 503, "OVERLOADED");
    assert_eq!(h.get("retry-after").unwrap(), "1");
    drop(first);
    let (s, _, j) = send!(app, verify());
    assert_eq!(s, StatusCode::OK, "{j}");
    drop(second);
}
