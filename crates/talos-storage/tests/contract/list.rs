//! Listing: ordering, keyset pagination boundaries, actor and computed-status filters.

use std::collections::BTreeSet;

use talos_storage::*;

use crate::harness::*;

pub async fn pagination(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let t = now();
    let mut want = Vec::new();
    for _ in 0..5 {
        let k = issued(n, &uuid_id());
        inserted(s.insert_key(&k).await.unwrap());
        want.push(k.key_id);
    }
    inserted(s.insert_key(&imported(n, 1)).await.unwrap()); // other kind: never listed
    want.sort();
    want.reverse();

    let q = |after: Option<&str>, limit| ListQuery {
        after: after.map(str::to_owned),
        limit,
        ..list_all(t)
    };
    assert_eq!(
        ids(&s.list_keys(n, KeyKind::Issued, &q(None, 5)).await.unwrap()),
        want,
        "exactly page_size"
    );
    assert_eq!(
        ids(&s.list_keys(n, KeyKind::Issued, &q(None, 6)).await.unwrap()),
        want,
        "page_size + 1"
    );
    assert_eq!(
        ids(&s.list_keys(n, KeyKind::Issued, &q(None, 4)).await.unwrap()),
        want[..4]
    );
    assert!(
        s.list_keys(n, KeyKind::Issued, &q(None, 0))
            .await
            .unwrap()
            .is_empty()
    );

    // Walk pages of 2, asking for 3 to learn whether another page exists.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .list_keys(n, KeyKind::Issued, &q(after.as_deref(), 3))
            .await
            .unwrap();
        let more = page.len() == 3;
        seen.extend(ids(&page[..page.len().min(2)]));
        if !more {
            break;
        }
        after = Some(page[1].key_id.clone());
    }
    assert_eq!(seen, want);

    // Cursor boundaries: strictly less than `after`.
    assert_eq!(
        ids(&s
            .list_keys(n, KeyKind::Issued, &q(Some(&want[0]), 10))
            .await
            .unwrap()),
        want[1..]
    );
    assert!(
        s.list_keys(n, KeyKind::Issued, &q(Some(&want[4]), 10))
            .await
            .unwrap()
            .is_empty(),
        "past the end"
    );
    assert!(
        s.list_keys(n, KeyKind::Issued, &q(Some(""), 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&s
            .list_keys(n, KeyKind::Issued, &q(Some("~"), 10))
            .await
            .unwrap()),
        want
    );

    assert_eq!(
        ids(&s
            .list_keys(n, KeyKind::Imported, &q(None, 10))
            .await
            .unwrap()),
        vec![hex_id(1)]
    );
    assert!(
        s.list_keys(nid(), KeyKind::Issued, &q(None, 10))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn filters(db: &TestDb) {
    let s = &db.store;
    let n = nid();
    let t = now();
    let mk = |actor: &str, status: StoredStatus, expire: Option<i64>| {
        let mut k = issued(n, &uuid_id());
        k.actor_id = actor.into();
        k.status = status;
        k.expire_time = expire.map(|h| t + hours(h));
        k
    };
    let active_forever = mk("alice", StoredStatus::Active, None);
    let active_soon = mk("bob", StoredStatus::Active, Some(1));
    let expired = mk("alice", StoredStatus::Active, Some(-1));
    let expires_now = mk("bob", StoredStatus::Active, Some(0));
    let revoked = mk("alice", StoredStatus::Revoked, None);
    let revoked_expired = mk("bob", StoredStatus::Revoked, Some(-1));
    let all = [
        &active_forever,
        &active_soon,
        &expired,
        &expires_now,
        &revoked,
        &revoked_expired,
    ];
    for k in all {
        inserted(s.insert_key(k).await.unwrap());
    }
    let set = |ks: &[&KeyRecord]| ks.iter().map(|k| k.key_id.clone()).collect::<BTreeSet<_>>();
    let list = |actor: Option<&str>, status: Option<KeyStatus>, at| {
        let q = ListQuery {
            actor_id: actor.map(str::to_owned),
            status,
            ..list_all(at)
        };
        async move {
            let got = s.list_keys(n, KeyKind::Issued, &q).await.unwrap();
            // Whatever the filter, results stay in key_id descending order.
            assert!(got.windows(2).all(|w| w[0].key_id > w[1].key_id));
            if let Some(st) = status {
                assert!(got.iter().all(|k| k.status_at(at) == st));
            }
            got.iter()
                .map(|k| k.key_id.clone())
                .collect::<BTreeSet<_>>()
        }
    };

    assert_eq!(list(None, None, t).await, set(&all));
    assert_eq!(
        list(None, Some(KeyStatus::Active), t).await,
        set(&[&active_forever, &active_soon])
    );
    assert_eq!(
        list(None, Some(KeyStatus::Expired), t).await,
        set(&[&expired, &expires_now])
    );
    assert_eq!(
        list(None, Some(KeyStatus::Revoked), t).await,
        set(&[&revoked, &revoked_expired])
    );
    // The computed status moves with `now`.
    assert_eq!(
        list(None, Some(KeyStatus::Active), t + hours(2)).await,
        set(&[&active_forever])
    );
    assert_eq!(
        list(None, Some(KeyStatus::Active), t - hours(2)).await,
        set(&[&active_forever, &active_soon, &expired, &expires_now])
    );
    assert_eq!(
        list(Some("alice"), None, t).await,
        set(&[&active_forever, &expired, &revoked])
    );
    assert_eq!(
        list(Some("alice"), Some(KeyStatus::Expired), t).await,
        set(&[&expired])
    );
    assert_eq!(
        list(Some("bob"), Some(KeyStatus::Active), t).await,
        set(&[&active_soon])
    );
    assert!(list(Some("carol"), None, t).await.is_empty());

    // Filter plus cursor plus limit.
    let alice = list(Some("alice"), None, t)
        .await
        .into_iter()
        .rev()
        .collect::<Vec<_>>();
    let q = ListQuery {
        actor_id: Some("alice".into()),
        after: Some(alice[0].clone()),
        limit: 1,
        ..list_all(t)
    };
    assert_eq!(
        ids(&s.list_keys(n, KeyKind::Issued, &q).await.unwrap()),
        vec![alice[1].clone()]
    );
}
