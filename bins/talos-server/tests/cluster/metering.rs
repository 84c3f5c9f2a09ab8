//! Metering on two `talos-server` processes sharing one PostgreSQL and one Redis: 200
//! concurrent verifications of cost 1, half on each node, against a key with 50 credits are
//! valid exactly 50 times; 200 concurrent ingestions (100 request ids, each sent to both nodes)
//! debit an actor's balance exactly 100 times; and a quota set on one node is enforced by the
//! other at once, although it had the actor's key cached as unmetered.

use std::sync::Arc;

use serde_json::json;
use talos_test_support::{database_url, redis_url};

use super::{VERIFY, node_a, post, verify};

#[tokio::test(flavor = "multi_thread")]
async fn credits_and_balances_are_exact_across_two_nodes() {
    let (Some(admin), Some(redis)) = (database_url(), redis_url()) else {
        return;
    };
    let a = Arc::new(node_a(&admin, &redis, "    mode: standalone\n"));
    let b = Arc::new(a.spawn_another(None));

    let (_, secret) = a
        .issue_with(json!({"actor_id": "acme", "credits": {"remaining": 50}}))
        .await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let secret = secret.clone();
            tokio::spawn(async move { post(&node, VERIFY, json!({"credential": secret})).await })
        })
        .collect();
    let mut valid = 0;
    for t in tasks {
        let (status, _, j) = t.await.unwrap();
        assert_eq!(status, 200, "{j}");
        if j["is_valid"] == true {
            valid += 1;
        } else {
            assert_eq!(j["error_code"], "VERIFICATION_ERROR_USAGE_EXCEEDED", "{j}");
            assert_eq!(j["credits_remaining"], "0", "{j}");
        }
    }
    assert_eq!(valid, 50, "exactly the 50 credits were spent");

    // B caches the actor's other key as unmetered; a quota set on A applies on B at once.
    let (_, plain) = a.issue_with(json!({"actor_id": "acme"})).await;
    for _ in 0..3 {
        let (j, _) = verify(&b, &plain).await;
        assert_eq!(j["is_valid"], true, "{j}");
        assert!(j.get("balance_quota").is_none(), "{j}");
    }
    let (s, _, j) = post(
        &a,
        "/v2alpha1/admin/actorBalances:setQuota",
        json!({"actor_id": "acme", "quota_micros": 150}),
    )
    .await;
    assert_eq!(s, 200, "{j}");
    let (j, _) = verify(&b, &plain).await;
    assert_eq!(j["balance_quota"], "150", "B saw the quota set on A: {j}");

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let body = json!({"actor_id": "acme", "cost_micros": 1, "request_id": format!("req-{}", i / 2)});
            tokio::spawn(async move { post(&node, "/v2alpha1/admin/usage:ingest", body).await })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        let (status, _, j) = t.await.unwrap();
        assert_eq!(status, 200, "{j}");
        if j["accepted"] == true {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 100, "each request id debited once");
    let (s, _, j) = post(
        &b,
        "/v2alpha1/admin/actorBalances:topUp",
        json!({"actor_id": "acme", "amount_micros": 1}),
    )
    .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["remaining_micros"], "51", "150 - 100 + 1: {j}");

    // Spend the rest on A; B refuses the actor's key.
    let (s, _, _) = post(
        &a,
        "/v2alpha1/admin/usage:ingest",
        json!({"actor_id": "acme", "cost_micros": 51}),
    )
    .await;
    assert_eq!(s, 200);
    let (j, _) = verify(&b, &plain).await;
    assert_eq!(
        j["error_code"], "VERIFICATION_ERROR_BALANCE_EXHAUSTED",
        "{j}"
    );
    assert_eq!(j["balance_remaining"], "0", "{j}");
}
