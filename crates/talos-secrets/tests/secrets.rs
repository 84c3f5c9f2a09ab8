//! Integration tests of the public API of `talos-secrets`.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use talos_secrets::{
    Cursor, KeyEntry, Keyring, RetiredSecret, Secret, SecretsError, derive_key, open_page_token,
    seal_page_token,
};
use uuid::Uuid;

const CURRENT: &str = "use-a-random-64-char-hmac-secret-for-api-key-checksum-validation";
const RETIRED: &str = "previous-hmac-secret-rotated-out-on-2026-03-01-padded-to-64chars-";

/// Regression: a running process built its keyring while the retired secret was live; past
/// `expires_at` a page token sealed with that secret must stop opening without a rebuild.
#[test]
fn page_tokens_of_an_expired_retired_secret_are_refused_at_request_time() {
    let built = Utc::now() - Duration::minutes(10);
    let old = Keyring::new(Some(&Secret::new(RETIRED)), &[], built);
    let nid = Uuid::new_v4();
    let cursor = Cursor {
        last_key_id: "k".into(),
        nid,
    };
    let token = seal_page_token(old.current().unwrap(), &cursor);
    let running = Keyring::new(
        Some(&Secret::new(CURRENT)),
        &[RetiredSecret::expiring(
            RETIRED,
            Utc::now() - Duration::seconds(5),
        )],
        built,
    );
    assert_eq!(
        open_page_token(&running, &token, nid),
        Err(SecretsError::InvalidPageToken)
    );
}

#[test]
fn rotation_keeps_page_tokens_valid() {
    let now = Utc::now();
    let before = Keyring::new(Some(&Secret::new(RETIRED)), &[], now);
    let nid = Uuid::new_v4();
    let cursor = Cursor {
        last_key_id: "a".repeat(64),
        nid,
    };
    let token = seal_page_token(before.current().unwrap(), &cursor);

    let after = Keyring::new(
        Some(&Secret::new(CURRENT)),
        &[RetiredSecret::expiring(RETIRED, now + Duration::minutes(5))],
        now,
    );
    assert_eq!(open_page_token(&after, &token, nid).unwrap(), cursor);

    // Once the retired secret has expired it is no longer part of a keyring built later.
    let later = Keyring::new(
        Some(&Secret::new(CURRENT)),
        &[RetiredSecret::expiring(RETIRED, now + Duration::minutes(5))],
        now + Duration::minutes(6),
    );
    assert_eq!(later.len(), 1);
    assert_eq!(
        open_page_token(&later, &token, nid),
        Err(SecretsError::InvalidPageToken)
    );
    // The long-lived keyring can be pruned instead.
    assert_eq!(
        open_page_token(&after.pruned(now + Duration::minutes(6)), &token, nid),
        Err(SecretsError::InvalidPageToken)
    );
}

#[test]
fn keyring_entry_ids_are_stable_and_distinct() {
    let a = KeyEntry::new(&Secret::new(CURRENT));
    let b = KeyEntry::new(&Secret::new(RETIRED));
    assert_eq!(a.id(), KeyEntry::new(&Secret::new(CURRENT)).id());
    assert_ne!(a.id(), b.id());
    assert_eq!(
        a.id(),
        &hex::encode(derive_key(CURRENT.as_bytes(), "talos/secret-id/v1"))[..16]
    );
}

#[test]
fn config_shapes_deserialize() {
    #[derive(serde::Deserialize)]
    struct Hmac {
        current: Option<Secret>,
        #[serde(default)]
        retired: Vec<RetiredSecret>,
    }
    let cfg: Hmac = serde_json::from_str(&format!(
        r#"{{"current":"{CURRENT}","retired":["{RETIRED}",{{"value":"x","expires_at":"2030-01-01T00:00:00Z"}}]}}"#
    ))
    .unwrap();
    let now: DateTime<Utc> = "2029-01-01T00:00:00Z".parse().unwrap();
    let kr = Keyring::new(cfg.current.as_ref(), &cfg.retired, now);
    assert_eq!(kr.len(), 3);
    assert!(
        cfg.current
            .unwrap()
            .validate("secrets.hmac.current", 32)
            .is_ok()
    );
    let err = cfg.retired[1]
        .secret
        .validate("secrets.hmac.retired[1]", 32)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "secrets.hmac.retired[1] must be at least 32 characters (got 1)"
    );
}

proptest! {
    #[test]
    fn open_never_panics(token in ".{0,300}") {
        let kr = Keyring::from_current(&Secret::new(CURRENT));
        let r = open_page_token(&kr, &token, Uuid::nil());
        prop_assert!(r.is_err());
    }

    #[test]
    fn open_never_panics_on_base64ish(token in "[A-Za-z0-9_\\-+/=]{0,200}") {
        let kr = Keyring::from_current(&Secret::new(CURRENT));
        let _ = open_page_token(&kr, &token, Uuid::nil());
    }

    #[test]
    fn seal_open_round_trip(key_id in "\\PC{0,100}", nid in any::<u128>(), secret in ".{1,80}") {
        let kr = Keyring::from_current(&Secret::new(secret));
        let cursor = Cursor { last_key_id: key_id, nid: Uuid::from_u128(nid) };
        let token = seal_page_token(kr.current().unwrap(), &cursor);
        prop_assert_eq!(open_page_token(&kr, &token, cursor.nid), Ok(cursor.clone()));
        if nid != 0 {
            prop_assert_eq!(
                open_page_token(&kr, &token, Uuid::nil()),
                Err(SecretsError::PageTokenNetworkMismatch)
            );
        }
    }

    #[test]
    fn secret_never_printed(value in "[a-z]{8,40}") {
        let s = Secret::new(value.clone());
        let shown = format!("{s:?} {s}");
        prop_assert!(!shown.contains(&value));
        prop_assert!(!serde_json::to_string(&s).unwrap().contains(&value));
        let err = s.validate("p", 1000).unwrap_err();
        prop_assert!(!err.to_string().contains(&value));
    }
}
