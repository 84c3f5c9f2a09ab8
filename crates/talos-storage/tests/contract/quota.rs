//! Quota-checked inserts: the count and the insert are atomic per network.

use std::sync::Arc;

use talos_storage::*;

use crate::harness::*;

fn quota(max: u64) -> Quota {
    Quota { max, now: now() }
}

/// 30 concurrent single inserts and 10 concurrent batches of 3 under a quota of 5: exactly 5 keys
/// each time, the rest `QuotaExceeded`; revoked keys and other networks do not count.
pub async fn quota_exact_under_concurrency(db: &TestDb) {
    let n = nid();
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                store
                    .insert_key_within(&issued(n, &uuid_id()), &quota(5))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(InsertOutcome::Inserted(_)) => ok += 1,
            Err(StorageError::QuotaExceeded { limit: 5, current }) => assert_eq!(current, 5),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(db.store.count_active(n, now()).await.unwrap(), 5);

    // A revoked key frees its slot.
    let keys = db
        .store
        .list_keys(n, KeyKind::Issued, &list_all(now()))
        .await
        .unwrap();
    db.store
        .revoke_key(n, KeyKind::Issued, &keys[0].key_id, &revocation(now()))
        .await
        .unwrap();
    inserted(
        db.store
            .insert_key_within(&issued(n, &uuid_id()), &quota(5))
            .await
            .unwrap(),
    );
    match db
        .store
        .insert_key_within(&issued(n, &uuid_id()), &quota(5))
        .await
    {
        Err(StorageError::QuotaExceeded {
            limit: 5,
            current: 5,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    // Another network has its own count.
    inserted(
        db.store
            .insert_key_within(&issued(nid(), &uuid_id()), &quota(1))
            .await
            .unwrap(),
    );

    let m = nid();
    let tasks: Vec<_> = (0..10u32)
        .map(|b| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                let keys: Vec<KeyRecord> = (0..3).map(|i| imported(m, b * 3 + i)).collect();
                store.insert_keys_batch_within(&keys, &quota(5)).await
            })
        })
        .collect();
    let mut inserted_n = 0;
    for t in tasks {
        for o in t.await.unwrap().unwrap() {
            match o {
                BatchItemOutcome::Inserted(_) => inserted_n += 1,
                BatchItemOutcome::QuotaExceeded => {}
                BatchItemOutcome::Duplicate => panic!("no duplicates in this batch"),
            }
        }
    }
    assert_eq!(inserted_n, 5);
    assert_eq!(db.store.count_active(m, now()).await.unwrap(), 5);
}

/// A request id twin still gets the existing row back; a duplicate is still `Duplicate`.
pub async fn quota_insert_keeps_idempotency(db: &TestDb) {
    let n = nid();
    let mut k = issued(n, &uuid_id());
    k.request_id = Some("req-1".into());
    let first = inserted(db.store.insert_key_within(&k, &quota(5)).await.unwrap());
    let twin = issued(n, &uuid_id());
    let twin = KeyRecord {
        request_id: Some("req-1".into()),
        ..twin
    };
    match db.store.insert_key_within(&twin, &quota(5)).await.unwrap() {
        InsertOutcome::Existing(e) => assert_eq!(e, first),
        other => panic!("expected Existing, got {other:?}"),
    }
    let same_id = KeyRecord {
        request_id: None,
        ..first
    };
    assert_conflict(
        db.store.insert_key_within(&same_id, &quota(5)).await,
        ConflictKind::Duplicate,
    );
}
