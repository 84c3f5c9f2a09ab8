//! Single-key operations: insert, get, update, revoke, rotate, delete, touch, hashes, counts.

use chrono::{DateTime, Utc};
use talos_storage::*;

use crate::harness::*;

pub async fn roundtrip(db: &TestDb) {
    let s = &db.store;
    s.ping().await.unwrap();
    let n = nid();

    let full = issued(n, &uuid_id());
    let got = inserted(s.insert_key(&full).await.unwrap());
    assert_eq!(got, full);
    assert_eq!(
        s.get_key(n, KeyKind::Issued, &full.key_id).await.unwrap(),
        Some(looked_up(&full))
    );

    // Every optional field empty; an empty CIDR list reads back as "no restriction".
    let mut bare = issued(n, &uuid_id());
    bare.scopes.clear();
    bare.metadata.clear();
    bare.expire_time = None;
    bare.rate_limit_policy = None;
    bare.allowed_cidrs = Some(vec![]);
    bare.visibility = Visibility::Public;
    bare.name = String::new();
    let got = inserted(s.insert_key(&bare).await.unwrap());
    assert_eq!(got.allowed_cidrs, None);
    assert_eq!(
        got,
        KeyRecord {
            allowed_cidrs: None,
            ..bare.clone()
        }
    );

    // A stored revoked key keeps its reason and description.
    let mut revoked = issued(n, &uuid_id());
    revoked.status = StoredStatus::Revoked;
    revoked.revocation_reason = Some(RevocationReason::PrivilegeWithdrawn);
    revoked.revocation_description = Some("gone".into());
    revoked.last_used_time = Some(now());
    assert_eq!(inserted(s.insert_key(&revoked).await.unwrap()), revoked);

    let imp = imported(n, 1);
    assert_eq!(inserted(s.insert_key(&imp).await.unwrap()), imp);
    assert_eq!(
        s.get_key(n, KeyKind::Imported, &imp.key_id).await.unwrap(),
        Some(looked_up(&imp))
    );

    // Lookups check the kind and the network.
    assert_absent(s.get_key(n, KeyKind::Imported, &full.key_id).await);
    assert_absent(s.get_key(n, KeyKind::Issued, &imp.key_id).await);
    assert_absent(s.get_key(nid(), KeyKind::Issued, &full.key_id).await);
    assert_absent(s.get_key(n, KeyKind::Issued, "missing").await);
}

pub async fn request_id_idempotency(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let mut first = issued(n, &uuid_id());
    first.request_id = Some("req-1".into());
    let first = inserted(s.insert_key(&first).await.unwrap());

    // Same request id, different key: the stored row comes back unchanged.
    let mut retry = issued(n, &uuid_id());
    retry.request_id = Some("req-1".into());
    retry.name = "other".into();
    assert_eq!(
        s.insert_key(&retry).await.unwrap(),
        InsertOutcome::Existing(first.clone())
    );
    assert_absent(s.get_key(n, KeyKind::Issued, &retry.key_id).await);

    // The request id is scoped by kind and network.
    let mut imp = imported(n, 7);
    imp.request_id = Some("req-1".into());
    inserted(s.insert_key(&imp).await.unwrap());
    let mut other_net = retry.clone();
    other_net.nid = nid();
    inserted(s.insert_key(&other_net).await.unwrap());

    // A key id collision with a different request id is a duplicate, not idempotency.
    let mut clash = issued(n, &first.key_id);
    clash.request_id = Some("req-2".into());
    assert_conflict(s.insert_key(&clash).await, ConflictKind::Duplicate);
}

pub async fn duplicates(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let a = issued(n, &uuid_id());
    inserted(s.insert_key(&a).await.unwrap());
    assert_conflict(s.insert_key(&a).await, ConflictKind::Duplicate);

    // Issued and imported share the key id space within a network.
    let mut imp_same_id = imported(n, 1);
    imp_same_id.key_id = a.key_id.clone();
    assert_conflict(s.insert_key(&imp_same_id).await, ConflictKind::Duplicate);

    // Hashes are unique per network.
    inserted(s.insert_key(&imported(n, 1)).await.unwrap());
    let mut same_hash = imported(n, 2);
    same_hash.imported = imported(n, 1).imported;
    assert_conflict(s.insert_key(&same_hash).await, ConflictKind::Duplicate);
    let mut elsewhere = same_hash.clone();
    elsewhere.nid = nid();
    inserted(s.insert_key(&elsewhere).await.unwrap());
}

pub async fn update_patch(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let k = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let t1 = now() + hours(1);

    // Empty patch: only update_time moves.
    let got = s
        .update_key(n, KeyKind::Issued, &k.key_id, &KeyPatch::default(), t1)
        .await
        .unwrap();
    assert_eq!(
        got,
        KeyRecord {
            update_time: t1,
            ..k.clone()
        }
    );

    // Some(value) writes.
    let patch = KeyPatch {
        name: Some("renamed".into()),
        scopes: Some(vec!["admin".into()]),
        rate_limit_policy: Some(Some(RateLimitPolicy {
            quota: 5,
            window_secs: 1,
        })),
        allowed_cidrs: Some(Some(vec!["192.168.0.0/16".into()])),
        ..KeyPatch::default()
    };
    let got = s
        .update_key(n, KeyKind::Issued, &k.key_id, &patch, t1)
        .await
        .unwrap();
    assert_eq!(got.name, "renamed");
    assert_eq!(got.scopes, vec!["admin".to_owned()]);
    assert_eq!(got.metadata, k.metadata, "None leaves metadata alone");
    assert_eq!(
        got.rate_limit_policy,
        Some(RateLimitPolicy {
            quota: 5,
            window_secs: 1
        })
    );
    assert_eq!(got.allowed_cidrs, Some(vec!["192.168.0.0/16".to_owned()]));

    // Some(empty) clears.
    let clear = KeyPatch {
        name: Some(String::new()),
        scopes: Some(vec![]),
        metadata: Some(Default::default()),
        rate_limit_policy: Some(None),
        allowed_cidrs: Some(Some(vec![])),
        credits: Some(None),
    };
    let t2 = t1 + hours(1);
    let got = s
        .update_key(n, KeyKind::Issued, &k.key_id, &clear, t2)
        .await
        .unwrap();
    let want = KeyRecord {
        name: String::new(),
        scopes: vec![],
        metadata: Default::default(),
        rate_limit_policy: None,
        allowed_cidrs: None,
        update_time: t2,
        ..k.clone()
    };
    assert_eq!(got, want);
    assert_eq!(
        s.get_key(n, KeyKind::Issued, &k.key_id).await.unwrap(),
        Some(looked_up(&want))
    );
    let unset = KeyPatch {
        allowed_cidrs: Some(None),
        ..KeyPatch::default()
    };
    assert_eq!(
        s.update_key(n, KeyKind::Issued, &k.key_id, &unset, t2)
            .await
            .unwrap()
            .allowed_cidrs,
        None
    );

    assert_not_found(
        s.update_key(n, KeyKind::Issued, "missing", &patch, t1)
            .await,
    );
    assert_not_found(
        s.update_key(n, KeyKind::Imported, &k.key_id, &patch, t1)
            .await,
    );
    assert_not_found(
        s.update_key(nid(), KeyKind::Issued, &k.key_id, &patch, t1)
            .await,
    );
}

pub async fn revoke(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let k = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let at = now() + hours(1);
    let got = s
        .revoke_key(n, KeyKind::Issued, &k.key_id, &revocation(at))
        .await
        .unwrap();
    let want = KeyRecord {
        status: StoredStatus::Revoked,
        revocation_reason: Some(RevocationReason::KeyCompromise),
        revocation_description: Some("leaked in CI logs".into()),
        update_time: at,
        ..k.clone()
    };
    assert_eq!(got, want, "revocation never changes expire_time");
    assert_eq!(
        s.get_key(n, KeyKind::Issued, &k.key_id).await.unwrap(),
        Some(looked_up(&want))
    );

    assert_conflict(
        s.revoke_key(n, KeyKind::Issued, &k.key_id, &revocation(at))
            .await,
        ConflictKind::AlreadyRevoked,
    );
    assert_not_found(
        s.revoke_key(n, KeyKind::Issued, "missing", &revocation(at))
            .await,
    );
    assert_not_found(
        s.revoke_key(n, KeyKind::Imported, &k.key_id, &revocation(at))
            .await,
    );

    // An expired (stored-active) key can still be revoked; no description is stored as NULL.
    let mut old = issued(n, &uuid_id());
    old.expire_time = Some(now() - hours(1));
    inserted(s.insert_key(&old).await.unwrap());
    let r = Revocation {
        reason: RevocationReason::Unspecified,
        description: None,
        at,
    };
    let got = s
        .revoke_key(n, KeyKind::Issued, &old.key_id, &r)
        .await
        .unwrap();
    assert_eq!(got.status, StoredStatus::Revoked);
    assert_eq!(got.revocation_description, None);
    assert_eq!(got.expire_time, old.expire_time);
}

pub async fn rotate(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let old = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let at = now();
    let sup = Revocation {
        reason: RevocationReason::Superseded,
        description: None,
        at,
    };
    let new = issued(n, &uuid_id());
    let (got_new, got_old) = s.rotate_key(n, &old.key_id, &new, &sup).await.unwrap();
    assert_eq!(got_new, new);
    assert_eq!(got_old.status, StoredStatus::Revoked);
    assert_eq!(
        got_old.revocation_reason,
        Some(RevocationReason::Superseded)
    );
    assert_eq!(got_old.update_time, at);
    assert_eq!(
        s.get_key(n, KeyKind::Issued, &old.key_id).await.unwrap(),
        Some(looked_up(&got_old))
    );
    assert_eq!(
        s.get_key(n, KeyKind::Issued, &new.key_id).await.unwrap(),
        Some(looked_up(&new))
    );

    // Rotating a revoked key: NotActive, and the new key is not inserted.
    let again = issued(n, &uuid_id());
    assert_conflict(
        s.rotate_key(n, &old.key_id, &again, &sup).await,
        ConflictKind::NotActive,
    );
    assert_absent(s.get_key(n, KeyKind::Issued, &again.key_id).await);

    // Expired at revocation.at: NotActive, nothing changes.
    let mut expired = issued(n, &uuid_id());
    expired.expire_time = Some(at);
    inserted(s.insert_key(&expired).await.unwrap());
    assert_conflict(
        s.rotate_key(n, &expired.key_id, &again, &sup).await,
        ConflictKind::NotActive,
    );
    assert_eq!(
        s.get_key(n, KeyKind::Issued, &expired.key_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        StoredStatus::Active
    );

    assert_not_found(s.rotate_key(n, "missing", &again, &sup).await);
    assert_not_found(s.rotate_key(nid(), &new.key_id, &again, &sup).await);

    // The insert fails (duplicate key id): the revocation is rolled back.
    let clash = issued(n, &old.key_id);
    assert_conflict(
        s.rotate_key(n, &new.key_id, &clash, &sup).await,
        ConflictKind::Duplicate,
    );
    assert_eq!(
        s.get_key(n, KeyKind::Issued, &new.key_id).await.unwrap(),
        Some(looked_up(&new))
    );
}

pub async fn delete(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let k = inserted(s.insert_key(&imported(n, 1)).await.unwrap());
    assert_not_found(s.delete_key(n, KeyKind::Issued, &k.key_id).await);
    assert_not_found(s.delete_key(nid(), KeyKind::Imported, &k.key_id).await);
    // The deleted row comes back, with the hash it had at the delete.
    assert_eq!(
        s.delete_key(n, KeyKind::Imported, &k.key_id).await.unwrap(),
        k
    );
    assert_absent(s.get_key(n, KeyKind::Imported, &k.key_id).await);
    assert_not_found(s.delete_key(n, KeyKind::Imported, &k.key_id).await);
    // The hash is free again.
    inserted(s.insert_key(&imported(n, 1)).await.unwrap());
}

pub async fn touch(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let k = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let t = now() + hours(1);
    s.touch_key(n, KeyKind::Issued, &k.key_id, t).await.unwrap();
    assert_used_at(s.as_ref(), &k, t).await;
    // An older (late-flushed) time never moves it back.
    s.touch_key(n, KeyKind::Issued, &k.key_id, t - hours(2))
        .await
        .unwrap();
    assert_eq!(
        s.get_key(n, KeyKind::Issued, &k.key_id)
            .await
            .unwrap()
            .unwrap()
            .last_used_time,
        Some(t)
    );
    // Missing rows are not an error.
    s.touch_key(n, KeyKind::Issued, "missing", t).await.unwrap();
}

/// A batch of last-used writes (`touch_keys`, one flush of the last-used writer): every key of
/// either kind moves forward to its newest time in the batch, never back; missing keys, other
/// networks and the other columns are left alone.
pub async fn touch_batch(db: &TestDb) {
    let s = &db.store;
    let (n, other) = (nid(), nid());
    let a = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let b = inserted(s.insert_key(&issued(n, &uuid_id())).await.unwrap());
    let c = inserted(s.insert_key(&imported(n, 7001)).await.unwrap());
    let same_id = inserted(s.insert_key(&issued(other, &a.key_id)).await.unwrap());
    let t = now() + hours(1);
    // `b` was used later already: an older flush must not move it back.
    s.touch_key(n, KeyKind::Issued, &b.key_id, t + hours(3))
        .await
        .unwrap();
    let touch = |kind, key_id: &str, at| Touch {
        nid: n,
        kind,
        key_id: key_id.to_owned(),
        at,
    };
    s.touch_keys(&[
        touch(KeyKind::Issued, &a.key_id, t),
        // The same key twice in one batch: the newest time wins, whatever the order.
        touch(KeyKind::Issued, &a.key_id, t + hours(2)),
        touch(KeyKind::Issued, &a.key_id, t + hours(1)),
        touch(KeyKind::Issued, &b.key_id, t),
        touch(KeyKind::Imported, &c.key_id, t),
        // A key of another kind with this id does not exist: nothing happens.
        touch(KeyKind::Imported, &a.key_id, t),
        touch(KeyKind::Issued, "missing", t),
    ])
    .await
    .unwrap();
    let used = async |nid, kind, key_id: &str| {
        s.get_key(nid, kind, key_id)
            .await
            .unwrap()
            .unwrap()
            .last_used_time
    };
    assert_eq!(
        used(n, KeyKind::Issued, &a.key_id).await,
        Some(t + hours(2))
    );
    assert_eq!(
        used(n, KeyKind::Issued, &b.key_id).await,
        Some(t + hours(3))
    );
    assert_eq!(
        used(other, KeyKind::Issued, &same_id.key_id).await,
        None,
        "another network's key with the same id is untouched"
    );
    assert_used_at(s.as_ref(), &c, t).await;
    s.touch_keys(&[]).await.unwrap();
}

/// `k` reads back as inserted but for `last_used_time`, now `t`: a touch changes nothing else.
async fn assert_used_at(s: &dyn Store, k: &KeyRecord, t: DateTime<Utc>) {
    let got = s.get_key(k.nid, k.kind, &k.key_id).await.unwrap().unwrap();
    assert_eq!(
        got,
        KeyRecord {
            last_used_time: Some(t),
            ..looked_up(k)
        },
        "touch changes nothing else"
    );
}

pub async fn hashes(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let k = inserted(s.insert_key(&imported(n, 1)).await.unwrap());
    inserted(s.insert_key(&imported(n, 2)).await.unwrap());

    let found = s
        .find_imported_by_hashes(n, &[hash(99), hash(1)])
        .await
        .unwrap();
    assert_eq!(found, Some(looked_up(&k)));
    assert_eq!(
        s.find_imported_by_hashes(n, &[hash(99)]).await.unwrap(),
        None
    );
    assert_eq!(s.find_imported_by_hashes(n, &[]).await.unwrap(), None);
    assert_eq!(
        s.find_imported_by_hashes(nid(), &[hash(1)]).await.unwrap(),
        None
    );

    // Rehash applies only while the stored hash is still the old one.
    assert!(
        s.rehash_imported(n, &k.key_id, &hash(98), &hash(50), "s2")
            .await
            .unwrap()
            .is_none()
    );
    // It returns the row as it is now: a revoke that committed after the caller read the row
    // shows (the caller must not act on its older copy).
    let revoked = s
        .revoke_key(
            n,
            KeyKind::Imported,
            &k.key_id,
            &Revocation {
                reason: RevocationReason::KeyCompromise,
                description: None,
                at: now(),
            },
        )
        .await
        .unwrap();
    let rehashed = s
        .rehash_imported(n, &k.key_id, &hash(1), &hash(50), "s2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rehashed.status, revoked.status);
    assert_eq!(rehashed.imported.as_ref().unwrap().hash, hash(50));
    assert!(
        s.rehash_imported(n, &k.key_id, &hash(1), &hash(51), "s3")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.find_imported_by_hashes(n, &[hash(1)]).await.unwrap(),
        None
    );
    let got = s
        .find_imported_by_hashes(n, &[hash(50)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.imported,
        Some(ImportedHash {
            hash: hash(50),
            secret_id: "s2".into()
        })
    );
    assert_eq!(got.update_time, revoked.update_time);
    assert!(
        s.rehash_imported(n, "missing", &hash(50), &hash(52), "s2")
            .await
            .unwrap()
            .is_none()
    );
    // Taking another key's hash is a duplicate.
    assert_conflict(
        s.rehash_imported(n, &k.key_id, &hash(50), &hash(2), "s2")
            .await,
        ConflictKind::Duplicate,
    );
}

pub async fn counts(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let t = now();
    let mut keys = vec![
        issued(n, &uuid_id()),
        issued(n, &uuid_id()),
        imported(n, 1),
        imported(n, 2),
        imported(n, 3),
    ];
    keys[1].expire_time = Some(t); // expired exactly at `t`
    keys[2].status = StoredStatus::Revoked;
    keys[3].imported.as_mut().unwrap().secret_id = "s2".into();
    keys[4].expire_time = Some(t + hours(1));
    for k in &keys {
        inserted(s.insert_key(k).await.unwrap());
    }
    inserted(s.insert_key(&issued(nid(), &uuid_id())).await.unwrap());
    assert_eq!(s.count_active(n, t).await.unwrap(), 3);
    assert_eq!(s.count_active(n, t - hours(1)).await.unwrap(), 4);
    assert_eq!(s.count_active(n, t + hours(2)).await.unwrap(), 2);
    assert_eq!(s.count_active(nid(), t).await.unwrap(), 0);

    // Across networks; issued keys never count.
    assert_eq!(s.count_imported_with_unknown_secret(&[]).await.unwrap(), 3);
    assert_eq!(
        s.count_imported_with_unknown_secret(&["s1".into()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.count_imported_with_unknown_secret(&["s1".into(), "s2".into()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.count_imported_with_unknown_secret(&["s9".into()])
            .await
            .unwrap(),
        3
    );
}

pub async fn invalidations(db: &TestDb) {
    let s = &db.store;
    assert!(s.pending_invalidations(10).await.unwrap().is_empty());
    let (a, b) = (nid(), nid());
    s.add_invalidation(a, "k1", now()).await.unwrap();
    s.add_invalidation(b, "h:00ff", now()).await.unwrap();
    s.add_invalidation(a, "k1", now()).await.unwrap();
    let all = s.pending_invalidations(10).await.unwrap();
    let got: Vec<_> = all.iter().map(|i| (i.nid, i.cache_key.as_str())).collect();
    assert_eq!(
        got,
        vec![(a, "k1"), (b, "h:00ff"), (a, "k1")],
        "oldest first"
    );
    assert_eq!(s.pending_invalidations(2).await.unwrap(), all[..2]);
    s.remove_invalidations(&[all[0].id, all[2].id])
        .await
        .unwrap();
    assert_eq!(s.pending_invalidations(10).await.unwrap(), all[1..2]);
    s.remove_invalidations(&[]).await.unwrap();
    s.remove_invalidations(&[all[1].id]).await.unwrap();
    assert!(s.pending_invalidations(10).await.unwrap().is_empty());
}
