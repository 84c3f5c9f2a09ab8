//! Batch import, network isolation and concurrency.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::join_all;
use talos_storage::*;

use crate::harness::*;

fn outcome_ids(o: &[BatchItemOutcome]) -> Vec<Option<String>> {
    o.iter()
        .map(|o| match o {
            BatchItemOutcome::Inserted(k) => Some(k.key_id.clone()),
            BatchItemOutcome::Duplicate | BatchItemOutcome::QuotaExceeded => None,
        })
        .collect()
}

pub async fn batch_duplicates(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    inserted(s.insert_key(&imported(n, 100)).await.unwrap());
    let mut existing_req = imported(n, 101);
    existing_req.request_id = Some("req-old".into());
    inserted(s.insert_key(&existing_req).await.unwrap());

    let a = imported(n, 1);
    let mut dup_existing_hash = imported(n, 2);
    dup_existing_hash.imported = imported(n, 100).imported;
    let mut dup_in_batch_hash = imported(n, 3);
    dup_in_batch_hash.imported = a.imported.clone();
    let d = imported(n, 4);
    let mut dup_in_batch_id = imported(n, 5);
    dup_in_batch_id.key_id = d.key_id.clone();
    let mut dup_existing_id = imported(n, 6);
    dup_existing_id.key_id = hex_id(100);
    let mut dup_existing_req = imported(n, 7);
    dup_existing_req.request_id = Some("req-old".into());
    let mut req = imported(n, 8);
    req.request_id = Some("req-new".into());
    let mut dup_in_batch_req = imported(n, 9);
    dup_in_batch_req.request_id = Some("req-new".into());
    let other_net = imported(nid(), 1); // same hash as `a`, other network: fine
    // Shares only the key id of a rejected item: the rejected item claimed nothing.
    let mut after_rejected = imported(n, 11);
    after_rejected.key_id = hex_id(3);

    let batch = vec![
        a.clone(),
        dup_existing_hash,
        dup_in_batch_hash,
        d.clone(),
        dup_in_batch_id,
        dup_existing_id,
        dup_existing_req,
        req.clone(),
        dup_in_batch_req,
        other_net.clone(),
        after_rejected.clone(),
    ];
    let out = s.insert_keys_batch(&batch).await.unwrap();
    let want = vec![
        Some(a.key_id.clone()),
        None,
        None,
        Some(d.key_id.clone()),
        None,
        None,
        None,
        Some(req.key_id.clone()),
        None,
        Some(other_net.key_id.clone()),
        Some(hex_id(3)),
    ];
    assert_eq!(outcome_ids(&out), want);
    assert_eq!(out[0], BatchItemOutcome::Inserted(a.clone()));
    assert_eq!(
        s.get_key(n, KeyKind::Imported, &a.key_id).await.unwrap(),
        Some(looked_up(&a))
    );
    assert_eq!(
        s.get_key(n, KeyKind::Imported, &d.key_id).await.unwrap(),
        Some(looked_up(&d)),
        "the first of an id wins"
    );
    assert_eq!(
        s.find_imported_by_hashes(n, &[hash(1)]).await.unwrap(),
        Some(looked_up(&a))
    );
    assert_eq!(
        s.get_key(n, KeyKind::Imported, &hex_id(3)).await.unwrap(),
        Some(looked_up(&after_rejected))
    );
    let listed = s
        .list_keys(n, KeyKind::Imported, &list_all(now()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 6);

    assert!(s.insert_keys_batch(&[]).await.unwrap().is_empty());
}

pub async fn batch_thousand(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let keys: Vec<KeyRecord> = (0..1000).map(|i| imported(n, i)).collect();
    let out = s.insert_keys_batch(&keys).await.unwrap();
    assert_eq!(out.len(), 1000);
    for (o, k) in out.iter().zip(&keys) {
        assert_eq!(o, &BatchItemOutcome::Inserted(k.clone()));
    }
    assert_eq!(
        s.list_keys(n, KeyKind::Imported, &list_all(now()))
            .await
            .unwrap()
            .len(),
        1000
    );
    assert_eq!(
        s.find_imported_by_hashes(n, &[hash(999)]).await.unwrap(),
        Some(looked_up(&keys[999]))
    );

    // Again: all duplicates, plus one new key at the end.
    let mut again = keys.clone();
    let extra = imported(n, 1000);
    again.push(extra.clone());
    let out = s.insert_keys_batch(&again).await.unwrap();
    assert!(
        out[..1000]
            .iter()
            .all(|o| *o == BatchItemOutcome::Duplicate)
    );
    assert_eq!(out[1000], BatchItemOutcome::Inserted(extra));
    assert_eq!(s.count_active(n, now()).await.unwrap(), 1001);
}

pub async fn network_isolation(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (nid(), nid());
    let id = uuid_id();
    let ka = inserted(s.insert_key(&issued(a, &id)).await.unwrap());
    let mut kb = issued(b, &id);
    kb.name = "b".into();
    let kb = inserted(s.insert_key(&kb).await.unwrap());
    inserted(s.insert_key(&imported(a, 1)).await.unwrap());
    inserted(s.insert_key(&imported(b, 1)).await.unwrap());

    assert_eq!(
        s.get_key(a, KeyKind::Issued, &id).await.unwrap(),
        Some(looked_up(&ka))
    );
    assert_eq!(
        s.get_key(b, KeyKind::Issued, &id).await.unwrap(),
        Some(looked_up(&kb))
    );
    assert_eq!(
        s.list_keys(a, KeyKind::Issued, &list_all(now()))
            .await
            .unwrap(),
        vec![ka.clone()]
    );
    assert_eq!(
        s.find_imported_by_hashes(b, &[hash(1)])
            .await
            .unwrap()
            .unwrap()
            .nid,
        b
    );

    s.revoke_key(a, KeyKind::Issued, &id, &revocation(now()))
        .await
        .unwrap();
    assert_eq!(
        s.get_key(b, KeyKind::Issued, &id)
            .await
            .unwrap()
            .unwrap()
            .status,
        StoredStatus::Active
    );
    s.delete_key(a, KeyKind::Issued, &id).await.unwrap();
    assert_eq!(
        s.get_key(b, KeyKind::Issued, &id).await.unwrap(),
        Some(looked_up(&kb))
    );
    let q = ListQuery {
        status: Some(KeyStatus::Active),
        ..list_all(now())
    };
    assert_eq!(s.list_keys(b, KeyKind::Issued, &q).await.unwrap(), vec![kb]);
    assert_eq!(s.count_active(a, now()).await.unwrap(), 1);
    assert_eq!(s.count_active(b, now()).await.unwrap(), 2);
}

fn successes<T>(results: &[Result<T>]) -> usize {
    results.iter().filter(|r| r.is_ok()).count()
}

pub async fn concurrent_revokes(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let k = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let tasks = (0..2).map(|_| {
        let (s, id) = (Arc::clone(s), k.key_id.clone());
        tokio::spawn(async move {
            s.revoke_key(n, KeyKind::Issued, &id, &revocation(now()))
                .await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(successes(&results), 1, "{results:?}");
    for r in results.into_iter().filter(Result::is_err) {
        assert_conflict(r, ConflictKind::AlreadyRevoked);
    }
}

pub async fn concurrent_imports(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let tasks = (0..10).map(|i| {
        let s = Arc::clone(s);
        let mut k = imported(n, 500 + i);
        k.imported = imported(n, 1).imported; // one hash, ten key ids
        tokio::spawn(async move { s.insert_key(&k).await })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(successes(&results), 1, "{results:?}");
    for r in results.into_iter().filter(Result::is_err) {
        assert_conflict(r, ConflictKind::Duplicate);
    }
    assert_eq!(
        s.list_keys(n, KeyKind::Imported, &list_all(now()))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn concurrent_rotations(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let old = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let tasks = (0..5).map(|_| {
        let (s, id) = (Arc::clone(s), old.key_id.clone());
        let rev = Revocation {
            reason: RevocationReason::Superseded,
            description: None,
            at: now(),
        };
        tokio::spawn(async move { s.rotate_key(n, &id, &issued(n, &uuid_id()), &rev).await })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(successes(&results), 1, "{results:?}");
    let winner = results
        .iter()
        .find_map(|r| r.as_ref().ok())
        .unwrap()
        .0
        .key_id
        .clone();
    for r in results.into_iter().filter(Result::is_err) {
        assert_conflict(r, ConflictKind::NotActive);
    }
    let all = s
        .list_keys(n, KeyKind::Issued, &list_all(now()))
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "the old key and exactly one successor");
    let active = ListQuery {
        status: Some(KeyStatus::Active),
        ..list_all(now())
    };
    assert_eq!(
        ids(&s.list_keys(n, KeyKind::Issued, &active).await.unwrap()),
        vec![winner]
    );
}

pub async fn concurrent_batches(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    // Two overlapping batches race; every key lands exactly once.
    let tasks = (0..2u32).map(|b| {
        let s = Arc::clone(s);
        let keys: Vec<KeyRecord> = (0..200).map(|i| imported(n, b * 100 + i)).collect();
        tokio::spawn(async move { s.insert_keys_batch(&keys).await })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let mut won = HashSet::new();
    for out in &results {
        for id in outcome_ids(out).into_iter().flatten() {
            assert!(won.insert(id), "a key inserted twice");
        }
    }
    assert_eq!(won.len(), 300);
    assert_eq!(
        s.list_keys(n, KeyKind::Imported, &list_all(now()))
            .await
            .unwrap()
            .len(),
        300
    );
}
