//! `keys issue --credits`, `keys verify --cost`, `keys issued update --credits`, `usage ingest`
//! and `balances get|set-quota|top-up` against a real server.

use serde_json::json;

use super::support::*;

#[test]
fn credits_usage_and_balances() {
    let srv = Server::start();
    let j = srv
        .talos(&[
            "keys",
            "issue",
            "metered",
            "--actor",
            "acme",
            "--ttl",
            "1h",
            "--credits",
            "2",
            "--refill-amount",
            "5",
            "--refill-interval",
            "daily",
        ])
        .ok_json();
    let credits = &j["issued_api_key"]["credits"];
    assert_eq!(credits["remaining"], "2", "{j}");
    assert_eq!(
        credits["refill"],
        json!({"amount": "5", "interval": "daily"})
    );
    let secret = j["secret"].as_str().unwrap().to_owned();
    let kid = j["issued_api_key"]["key_id"].as_str().unwrap().to_owned();

    let v = srv.talos(&["keys", "verify", &secret]).ok_json();
    assert_eq!(v["credits_remaining"], "1", "{v}");
    let v = srv
        .talos(&["keys", "verify", &secret, "--cost", "0"])
        .ok_json();
    assert_eq!(v["credits_remaining"], "1", "cost 0 spends nothing: {v}");
    let v = srv
        .talos(&["keys", "verify", &secret, "--cost", "2"])
        .json_with_code(1);
    assert_eq!(v["error_code"], "VERIFICATION_ERROR_USAGE_EXCEEDED", "{v}");
    let t = srv
        .talos(&["keys", "verify", &secret, "--format", "table"])
        .ok_text();
    assert!(t.contains("credits left:") && t.contains('0'), "{t}");

    let u = srv
        .talos(&["keys", "issued", "update", &kid, "--credits", "9"])
        .ok_json();
    assert_eq!(u["credits"]["remaining"], "9", "{u}");
    assert!(
        u["credits"].get("refill").is_none(),
        "new credits replace the old: {u}"
    );

    let b = srv
        .talos(&["balances", "set-quota", "acme", "--quota-micros", "1000"])
        .ok_json();
    assert_eq!(
        b,
        json!({"actor_id": "acme", "quota_micros": "1000", "remaining_micros": "1000"})
    );
    let ingest = [
        "usage",
        "ingest",
        "--actor",
        "acme",
        "--cost-micros",
        "400",
        "--type",
        "tokens",
        "--amount",
        "1200",
        "--model",
        "m1",
        "--request-id",
        "req-1",
    ];
    let i = srv.talos(&ingest).ok_json();
    assert_eq!(
        i,
        json!({"balance_remaining": "600", "balance_quota": "1000", "accepted": true})
    );
    let again = srv.talos(&ingest).ok_json();
    assert_eq!(
        again["accepted"], false,
        "a repeated request id is not debited: {again}"
    );
    let b = srv
        .talos(&["balances", "top-up", "acme", "--amount-micros", "5"])
        .ok_json();
    assert_eq!(b["remaining_micros"], "605");
    let t = srv
        .talos(&["balances", "get", "acme", "--format", "table"])
        .ok_text();
    assert!(
        t.contains("quota:") && t.contains("1000") && t.contains("605"),
        "{t}"
    );
    let v = srv.talos(&["keys", "verify", &secret]).ok_json();
    assert_eq!(
        (&v["balance_remaining"], &v["balance_quota"]),
        (&json!("605"), &json!("1000")),
        "{v}"
    );

    // The CLI refuses what the server would refuse, before sending.
    run_talos(
        &["usage", "ingest", "--actor", "a", "--cost-micros", "-1"],
        None,
        None,
    )
    .fails(2);
    run_talos(
        &["keys", "issue", "n", "--actor", "a", "--refill-amount", "5"],
        None,
        None,
    )
    .fails(2);
}
