//! Upstream's API details (issue 17): its filter grammar, the 4096-character credential limit
//! on verify, the security headers with `Permissions-Policy`, 499 for a body the client never
//! finished.

use super::*;

/// Percent-encodes a filter for a query string (what curl --data-urlencode would send).
fn q(filter: &str) -> String {
    filter
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[actix_web::test]
async fn filters_take_upstreams_grammar() {
    let state = state_with("").await;
    let app = app!(state);
    let mut ids = Vec::new();
    for actor in ["u1", "u1", "u2"] {
        let (s, _, j) = send!(
            app,
            post(
                &format!("{A}/issuedApiKeys"),
                json!({"name": "n", "actor_id": actor})
            )
        );
        assert_eq!(s, StatusCode::CREATED);
        ids.push(j["issued_api_key"]["key_id"].as_str().unwrap().to_string());
    }
    let (s, _, _) = send!(
        app,
        post(&format!("{A}/issuedApiKeys/{}:revoke", ids[0]), json!({}))
    );
    assert_eq!(s, StatusCode::NO_CONTENT);
    for (filter, want) in [
        ("actor_id=u1", 2),
        (r#"actor_id="u1""#, 2),
        (r#"status="KEY_STATUS_ACTIVE" AND actor_id=u1"#, 1),
        ("actor_id=u1 and status=KEY_STATUS_REVOKED", 1),
        ("actor_id=u1\tAnD   status=\"KEY_STATUS_REVOKED\"", 1),
        ("  actor_id = u2  ", 1),
    ] {
        let (s, _, j) = send!(
            app,
            TestRequest::get().uri(&format!("{A}/issuedApiKeys?filter={}", q(filter)))
        );
        assert_eq!(s, StatusCode::OK, "{filter}: {j}");
        assert_eq!(
            j["issued_api_keys"].as_array().unwrap().len(),
            want,
            "{filter}: {j}"
        );
    }
    for bad in [
        "actor_id=u1 OR actor_id=u2",
        "actor_id=u1 AND",
        "status=KEY_STATUS_ACTIVE",
        r#"status="active" AND actor_id=u1"#,
        "owner=u1",
    ] {
        let (s, _, j) = send!(
            app,
            TestRequest::get().uri(&format!("{A}/issuedApiKeys?filter={}", q(bad)))
        );
        assert_envelope(s, &j, 400, "BAD_REQUEST");
    }
}

#[actix_web::test]
async fn an_over_long_credential_is_a_bad_request_naming_the_field() {
    let state = state_with("").await;
    let app = app!(state);
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:verify"),
            json!({"credential": "x".repeat(4097)})
        )
    );
    assert_envelope(s, &j, 400, "BAD_REQUEST");
    let message = j["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("credential") && message.contains("4096"),
        "{message}"
    );
    // Characters, not bytes: 4096 two-byte characters are within the limit.
    for ok in ["x".repeat(4096), "é".repeat(4096)] {
        let (s, _, j) = send!(
            app,
            post(&format!("{A}/apiKeys:verify"), json!({"credential": ok}))
        );
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["is_valid"], false);
    }
    // Within a batch, a long item stays that item's verdict (upstream validates only the single
    // request's field).
    let (s, _, j) = send!(
        app,
        post(
            &format!("{A}/apiKeys:batchVerify"),
            json!({"requests": [{"credential": "x".repeat(5000)}]})
        )
    );
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(
        j["results"][0]["error_code"],
        "VERIFICATION_ERROR_INVALID_FORMAT"
    );
}

#[actix_web::test]
async fn security_headers_include_permissions_policy_and_the_csp() {
    let state = state_with("").await;
    let app = app!(state);
    for req in [
        TestRequest::get().uri("/health/alive"),
        TestRequest::get().uri("/no/such/route"),
        post(&format!("{A}/apiKeys:verify"), json!({"credential": "x"})),
    ] {
        let (_, h, _) = send!(app, req);
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'self'") && csp.ends_with("frame-ancestors 'none'"),
            "{csp}"
        );
        let pp = h.get("permissions-policy").unwrap().to_str().unwrap();
        assert!(
            pp.contains("camera=()") && pp.contains("geolocation=()"),
            "{pp}"
        );
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(
            h.get("referrer-policy").unwrap(),
            "strict-origin-when-cross-origin"
        );
    }
}

#[actix_web::test]
async fn a_body_cut_short_is_499_cancelled() {
    use actix_web::error::PayloadError;
    use actix_web::web::Bytes;
    use futures_util::Stream;
    use std::pin::Pin;
    let state = state_with("").await;
    let app = app!(state);
    // A body that ends before its declared length: how actix reports a connection the client
    // closed mid-body.
    let chunks: Vec<Result<Bytes, PayloadError>> = vec![
        Ok(Bytes::from_static(b"{\"credential\":")),
        Err(PayloadError::Incomplete(None)),
    ];
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(futures_util::stream::iter(chunks));
    let req = TestRequest::post()
        .uri(&format!("{A}/apiKeys:verify"))
        .insert_header(("content-length", "100"))
        .to_request();
    let (req, _) = req.replace_payload(actix_web::dev::Payload::from(stream));
    let resp = call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 499);
    let body: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
    assert_eq!(body["error"]["status"], "CANCELLED");
    assert_eq!(body["error"]["details"][0]["reason"], "CANCELLED");
}
