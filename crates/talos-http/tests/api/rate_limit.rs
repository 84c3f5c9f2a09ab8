//! Per-key rate limits over HTTP: the counters in verify bodies (int64 as strings), the
//! `RateLimit-Policy`, `RateLimit` and `Retry-After` headers, batch verify, and none of it for
//! keys without a policy or with the limiter off.

use actix_web::http::StatusCode;
use actix_web::test::{call_service, init_service, read_body};
use serde_json::{Value, json};

use super::{A, post, state_with};

#[actix_web::test]
async fn rate_limited_key_headers_and_fields() {
    let state = state_with("rate_limit:\n  enabled: true\n").await;
    let app = app!(state);
    let verify = format!("{A}/apiKeys:verify");
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "rl", "actor_id": "u", "rate_limit_policy": {"quota": "2", "window": "60s"}})
        )
    );
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let secret = j["secret"].as_str().unwrap().to_string();
    for want in ["1", "0"] {
        let (s, h, j) = send!(app, post(&verify, json!({"credential": secret})));
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["is_valid"], true, "{j}");
        assert_eq!(
            j["rate_limit_remaining"], want,
            "int64 as a JSON string: {j}"
        );
        let reset = j["rate_limit_reset_time"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(reset).is_ok(),
            "{reset}"
        );
        assert_eq!(h.get("ratelimit-policy").unwrap(), "\"default\";q=2;w=60");
        assert_eq!(
            h.get("ratelimit").unwrap(),
            &format!("\"default\";r={want}")
        );
        assert_eq!(
            h.get("cache-control").unwrap(),
            "no-store",
            "responses for limited keys are not cacheable"
        );
        assert!(h.get("retry-after").is_none());
    }
    let (s, h, j) = send!(app, post(&verify, json!({"credential": secret})));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["is_valid"], false);
    assert_eq!(j["error_code"], "VERIFICATION_ERROR_RATE_LIMITED");
    assert_eq!(j["error_message"], "rate limit exceeded");
    assert_eq!(j["rate_limit_remaining"], "0");
    assert_eq!(h.get("ratelimit").unwrap(), "\"default\";r=0");
    let retry: u64 = h
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "one interval is 30 s: {retry}");
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    // Batch verify: counters per item in the body, no per-key headers.
    let (s, h, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:batchVerify"),
            json!({"requests": [{"credential": secret}]})
        )
    );
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        j["results"][0]["error_code"],
        "VERIFICATION_ERROR_RATE_LIMITED"
    );
    assert_eq!(j["results"][0]["rate_limit_remaining"], "0");
    assert!(h.get("ratelimit").is_none());
    assert_eq!(h.get("cache-control").unwrap(), "no-store");

    // A key without a policy: none of it, never a fake "0".
    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "free", "actor_id": "u"})
        )
    );
    let free = j["secret"].as_str().unwrap().to_string();
    let (_, h, j) = send!(app, post(&verify, json!({"credential": free})));
    assert_eq!(j["is_valid"], true);
    assert!(
        j.get("rate_limit_remaining").is_none() && j.get("rate_limit_reset_time").is_none(),
        "{j}"
    );
    assert!(
        h.get("ratelimit").is_none()
            && h.get("ratelimit-policy").is_none()
            && h.get("cache-control").is_none()
    );

    // The limiter off (the default): a key with a policy verifies without counters.
    let off = state_with("").await;
    let app = app!(off);
    let (_, _, j) = send!(
        app,
        post(
            &format!("{A}/issuedApiKeys"),
            json!({"name": "rl", "actor_id": "u", "rate_limit_policy": {"quota": "1", "window": "60s"}})
        )
    );
    let secret = j["secret"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let (_, h, j) = send!(app, post(&verify, json!({"credential": secret})));
        assert_eq!(j["is_valid"], true);
        assert_eq!(
            j["rate_limit_policy"]["quota"], "1",
            "the policy is still reported"
        );
        assert!(j.get("rate_limit_remaining").is_none());
        assert!(h.get("ratelimit").is_none() && h.get("cache-control").is_none());
    }
}
