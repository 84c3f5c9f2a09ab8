//! Metering: key credits (spend, refill, carried by rotation), actor balances and usage
//! ingestion, exact under concurrency.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use talos_storage::*;

use crate::harness::*;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn with_credits(nid: uuid::Uuid, remaining: i64, refill: Option<Refill>) -> KeyRecord {
    KeyRecord {
        credits: Some(Credits {
            remaining,
            refill,
            refilled_at: at(2026, 1, 1, 12),
        }),
        ..issued(nid, &uuid_id())
    }
}

fn usage(nid: uuid::Uuid, actor: &str, cost: i64, request_id: Option<&str>) -> UsageRecord {
    UsageRecord {
        id: 0,
        nid,
        actor_id: actor.into(),
        key_id: "k1".into(),
        usage_type: "tokens".into(),
        usage_amount: 3,
        cost_micros: cost,
        model: "m".into(),
        request_id: request_id.map(str::to_owned),
        session_id: "s".into(),
        create_time: now(),
    }
}

/// 200 concurrent spends of 1 against 50 credits: exactly 50 succeed, the balance ends at 0 and
/// every refusal saw a balance below the cost.
pub async fn credits_exact_under_concurrency(db: &TestDb) {
    let n = nid();
    let k = inserted(
        db.store
            .insert_key(&with_credits(n, 50, None))
            .await
            .unwrap(),
    );
    assert_eq!(k.credits.unwrap().remaining, 50, "credits round-trip");
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (store, id) = (Arc::clone(&db.store), k.key_id.clone());
            tokio::spawn(async move {
                store
                    .spend_credits(n, KeyKind::Issued, &id, 1, None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut spent = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            CreditSpend::Spent { remaining } => spent.push(remaining),
            CreditSpend::Insufficient { remaining } => assert_eq!(remaining, 0),
            other => panic!("unexpected {other:?}"),
        }
    }
    spent.sort_unstable();
    assert_eq!(spent, (0..50).collect::<Vec<_>>(), "each balance once");
    let got = db.store.get_key(n, KeyKind::Issued, &k.key_id).await;
    assert_eq!(got.unwrap().unwrap().credits.unwrap().remaining, 0);
}

/// What a spend answers besides `Spent`, and that a refused spend changes nothing.
pub async fn credits_outcomes(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let k = inserted(s.insert_key(&with_credits(n, 3, None)).await.unwrap());
    assert_eq!(
        s.spend_credits(n, KeyKind::Issued, &k.key_id, 5, None)
            .await
            .unwrap(),
        CreditSpend::Insufficient { remaining: 3 }
    );
    assert_eq!(
        s.spend_credits(n, KeyKind::Issued, &k.key_id, 3, None)
            .await
            .unwrap(),
        CreditSpend::Spent { remaining: 0 }
    );
    let plain = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    assert_eq!(
        s.spend_credits(n, KeyKind::Issued, &plain.key_id, 1, None)
            .await
            .unwrap(),
        CreditSpend::Unmetered
    );
    for (nid, id) in [(n, "missing".to_string()), (nid(), k.key_id.clone())] {
        assert_eq!(
            s.spend_credits(nid, KeyKind::Issued, &id, 1, None)
                .await
                .unwrap(),
            CreditSpend::Inactive
        );
    }
    let live = inserted(s.insert_key(&with_credits(n, 9, None)).await.unwrap());
    s.revoke_key(n, KeyKind::Issued, &live.key_id, &revocation(now()))
        .await
        .unwrap();
    assert_eq!(
        s.spend_credits(n, KeyKind::Issued, &live.key_id, 1, None)
            .await
            .unwrap(),
        CreditSpend::Inactive,
        "a revoked key spends nothing"
    );

    // Credits are patched like any field; removing them makes the key unmetered.
    let patch = KeyPatch {
        credits: Some(Some(Credits {
            remaining: 4,
            refill: Some(Refill {
                amount: 10,
                interval: RefillInterval::Monthly,
            }),
            refilled_at: at(2026, 2, 3, 0),
        })),
        ..KeyPatch::default()
    };
    let got = s
        .update_key(n, KeyKind::Issued, &plain.key_id, &patch, now())
        .await
        .unwrap();
    assert_eq!(got.credits, patch.credits.unwrap());
    let clear = KeyPatch {
        credits: Some(None),
        ..KeyPatch::default()
    };
    let got = s
        .update_key(n, KeyKind::Issued, &plain.key_id, &clear, now())
        .await
        .unwrap();
    assert_eq!(got.credits, None);
}

/// A refill resets the balance once per boundary however many spends race to it, and only when
/// the boundary is later than the last one applied.
pub async fn credits_refill_once_per_boundary(db: &TestDb) {
    let n = nid();
    let daily = Refill {
        amount: 10,
        interval: RefillInterval::Daily,
    };
    let k = inserted(
        db.store
            .insert_key(&with_credits(n, 0, Some(daily)))
            .await
            .unwrap(),
    );
    let day2 = RefillInterval::Daily.boundary(at(2026, 1, 2, 9));
    assert_eq!(day2, at(2026, 1, 2, 0));
    let spend = |boundary: DateTime<Utc>| {
        let (store, id) = (Arc::clone(&db.store), k.key_id.clone());
        tokio::spawn(async move {
            store
                .spend_credits(
                    n,
                    KeyKind::Issued,
                    &id,
                    1,
                    Some((RefillInterval::Daily, boundary)),
                )
                .await
                .unwrap()
        })
    };
    let tasks: Vec<_> = (0..30).map(|_| spend(day2)).collect();
    let mut ok = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), CreditSpend::Spent { .. }) {
            ok += 1;
        }
    }
    assert_eq!(
        ok, 10,
        "one refill of 10 for the boundary, not one per spend"
    );
    // The same boundary again, or an older one: no refill.
    for b in [day2, at(2026, 1, 1, 0)] {
        assert_eq!(
            spend(b).await.unwrap(),
            CreditSpend::Insufficient { remaining: 0 }
        );
    }
    // A boundary given for another interval than the key's is ignored.
    let other = db
        .store
        .spend_credits(
            n,
            KeyKind::Issued,
            &k.key_id,
            1,
            Some((RefillInterval::Monthly, at(2026, 2, 1, 0))),
        )
        .await
        .unwrap();
    assert_eq!(other, CreditSpend::Insufficient { remaining: 0 });
    assert_eq!(
        spend(at(2026, 1, 3, 0)).await.unwrap(),
        CreditSpend::Spent { remaining: 9 }
    );
    let got = db.store.get_key(n, KeyKind::Issued, &k.key_id).await;
    let credits = got.unwrap().unwrap().credits.unwrap();
    assert_eq!(credits.refilled_at, at(2026, 1, 3, 0));
    assert_eq!(credits.refill, Some(daily));
}

/// A rotation moves the old key's balance to the new key; the old key spends nothing after.
pub async fn rotation_carries_credits(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let old = inserted(s.insert_key(&with_credits(n, 7, None)).await.unwrap());
    s.spend_credits(n, KeyKind::Issued, &old.key_id, 2, None)
        .await
        .unwrap();
    let sup = Revocation {
        reason: RevocationReason::Superseded,
        description: None,
        at: now(),
    };
    let (new, _) = s
        .rotate_key(n, &old.key_id, &issued(n, &uuid_id()), &sup)
        .await
        .unwrap();
    assert_eq!(new.credits.unwrap().remaining, 5);
    assert_eq!(
        new.credits.unwrap().refilled_at,
        old.credits.unwrap().refilled_at
    );
    assert_eq!(
        s.spend_credits(n, KeyKind::Issued, &old.key_id, 1, None)
            .await
            .unwrap(),
        CreditSpend::Inactive
    );
    assert_eq!(
        s.spend_credits(n, KeyKind::Issued, &new.key_id, 1, None)
            .await
            .unwrap(),
        CreditSpend::Spent { remaining: 4 }
    );
}

/// Quotas, top-ups and debits; and the key lookups know whether the actor has a quota.
pub async fn balances(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let k = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let actor = k.actor_id.as_str();
    assert_eq!(s.get_balance(n, actor).await.unwrap(), None);
    let quota_seen = || async {
        s.get_key(n, KeyKind::Issued, &k.key_id)
            .await
            .unwrap()
            .unwrap()
            .actor_has_quota
    };
    assert_eq!(quota_seen().await, Some(false));

    // Without a balance, usage is recorded and nothing is debited.
    let out = s.ingest_usage(&usage(n, actor, 5, None)).await.unwrap();
    assert!(out.accepted && out.balance.is_none(), "{out:?}");

    let b = s.set_quota(n, actor, 100, now()).await.unwrap();
    assert_eq!((b.quota_micros, b.remaining_micros), (100, 100));
    assert_eq!(quota_seen().await, Some(true));
    let out = s.ingest_usage(&usage(n, actor, 30, None)).await.unwrap();
    assert_eq!(out.balance.unwrap().remaining_micros, 70);
    // Raising the quota keeps what was spent.
    let b = s.set_quota(n, actor, 150, now()).await.unwrap();
    assert_eq!((b.quota_micros, b.remaining_micros), (150, 120));
    let b = s.top_up(n, actor, 5, now()).await.unwrap();
    assert_eq!((b.quota_micros, b.remaining_micros), (150, 125));
    // Debits may go below zero: usage already happened.
    let out = s.ingest_usage(&usage(n, actor, 200, None)).await.unwrap();
    assert_eq!(out.balance.unwrap().remaining_micros, -75);
    assert_eq!(
        s.get_balance(n, actor)
            .await
            .unwrap()
            .unwrap()
            .remaining_micros,
        -75
    );

    // Quota 0 = unlimited: the lookups say so.
    s.set_quota(n, actor, 0, now()).await.unwrap();
    assert_eq!(quota_seen().await, Some(false));
    // A top-up of an actor without a balance starts one without a quota.
    let b = s.top_up(n, "fresh", 9, now()).await.unwrap();
    assert_eq!((b.quota_micros, b.remaining_micros), (0, 9));
    // Balances are per network.
    assert_eq!(s.get_balance(nid(), actor).await.unwrap(), None);
}

/// 200 concurrent ingestions with 100 request ids, each sent twice: exactly 100 accepted and
/// debited; the history holds one record per request id.
pub async fn ingest_exact_under_concurrency(db: &TestDb) {
    let n = nid();
    db.store.set_quota(n, "a", 1_000, now()).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                let id = format!("req-{}", i % 100);
                store
                    .ingest_usage(&usage(n, "a", 3, Some(&id)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        if t.await.unwrap().accepted {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 100);
    let b = db.store.get_balance(n, "a").await.unwrap().unwrap();
    assert_eq!(b.remaining_micros, 1_000 - 300);
    let history = db.store.usage_history(n, "a", 1_000).await.unwrap();
    assert_eq!(history.len(), 100);
    // A repeat answers the balance as it is, and records nothing.
    let again = db
        .store
        .ingest_usage(&usage(n, "a", 3, Some("req-7")))
        .await
        .unwrap();
    assert!(!again.accepted);
    assert_eq!(again.balance.unwrap().remaining_micros, 700);
    // Request ids are per network.
    let elsewhere = db
        .store
        .ingest_usage(&usage(nid(), "a", 3, Some("req-7")))
        .await
        .unwrap();
    assert!(elsewhere.accepted);
}

/// History: newest first, limited, one actor and one network only.
pub async fn usage_history(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    for i in 0..5 {
        let mut u = usage(n, "a", i, None);
        u.model = format!("m{i}");
        s.ingest_usage(&u).await.unwrap();
    }
    s.ingest_usage(&usage(n, "b", 1, None)).await.unwrap();
    s.ingest_usage(&usage(nid(), "a", 1, None)).await.unwrap();
    let h = s.usage_history(n, "a", 3).await.unwrap();
    let models: Vec<&str> = h.iter().map(|u| u.model.as_str()).collect();
    assert_eq!(models, ["m4", "m3", "m2"]);
    assert!(h[0].id > h[1].id);
    let first = &h[0];
    assert_eq!(
        (
            first.actor_id.as_str(),
            first.key_id.as_str(),
            first.usage_amount,
            first.cost_micros
        ),
        ("a", "k1", 3, 4)
    );
    assert_eq!(s.usage_history(n, "b", 10).await.unwrap().len(), 1);
    assert!(s.usage_history(n, "nobody", 10).await.unwrap().is_empty());
}
