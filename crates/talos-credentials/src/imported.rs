//! Imported keys: stored only as `HMAC-SHA256(secret, "talos/imported/v1" ‖ 0x00 ‖ nid ‖ 0x00 ‖ raw_key)`, with the
//! network id as its 36-character lowercase hyphenated form and the raw key bytes as received.

use talos_secrets::{KeyEntry, Keyring};
use uuid::Uuid;

/// Domain string of imported-key hashes.
pub const DOMAIN: &[u8] = b"talos/imported/v1";

/// The stored hash of an imported key under one secret.
pub fn hash(entry: &KeyEntry, nid: Uuid, raw_key: &[u8]) -> [u8; 32] {
    let mut buf = Uuid::encode_buffer();
    let nid = nid.hyphenated().encode_lower(&mut buf);
    entry.mac(&[DOMAIN, b"\0", nid.as_bytes(), b"\0", raw_key])
}

/// The hash under every secret of the keyring (current first, then retired), for one indexed lookup. Each item
/// carries the entry that produced it (`entry.id()` is what rows record, `entry.is_current()` tells whether a hit
/// must be re-hashed).
pub fn hash_all<'k>(
    keyring: &'k Keyring,
    nid: Uuid,
    raw_key: &[u8],
) -> Vec<(&'k KeyEntry, [u8; 32])> {
    keyring
        .iter()
        .map(|entry| (entry, hash(entry, nid, raw_key)))
        .collect()
}

/// A new imported-key id: 64 lowercase hex characters of 32 random bytes.
pub fn new_key_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Whether `s` has the imported-key id form (exactly 64 lowercase hex characters).
pub fn is_imported_key_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use talos_secrets::{RetiredSecret, Secret};

    #[test]
    fn hash_layout() {
        let secret = "preview-hmac-secret-minimum-32-chars-long";
        let nid = Uuid::parse_str("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0").unwrap();
        let got = hash(
            &KeyEntry::new(&Secret::new(secret)),
            nid,
            b"sk_live_abc\x00\xff",
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(
            b"talos/imported/v1\x000f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\x00sk_live_abc\x00\xff",
        );
        assert_eq!(got.as_slice(), mac.finalize().into_bytes().as_slice());
        // Network-scoped.
        assert_ne!(
            got,
            hash(
                &KeyEntry::new(&Secret::new(secret)),
                Uuid::nil(),
                b"sk_live_abc\x00\xff"
            )
        );
    }

    #[test]
    fn hash_all_order() {
        let kr = Keyring::new(
            Some(&Secret::new("current-current-current-current-00")),
            &[RetiredSecret::new("retired-retired-retired-retired-00")],
            chrono::Utc::now(),
        );
        let all = hash_all(&kr, Uuid::nil(), b"raw");
        assert_eq!(all.len(), 2);
        assert!(all[0].0.is_current());
        assert!(!all[1].0.is_current());
        assert_eq!(all[0].1, hash(kr.current().unwrap(), Uuid::nil(), b"raw"));
        assert_ne!(all[0].1, all[1].1);
        assert!(hash_all(&Keyring::default(), Uuid::nil(), b"raw").is_empty());
    }

    #[test]
    fn key_ids() {
        let a = new_key_id();
        assert!(is_imported_key_id(&a));
        assert_ne!(a, new_key_id());
        assert!(!is_imported_key_id(&a.to_uppercase()));
        assert!(!is_imported_key_id(&a[1..]));
        assert!(!is_imported_key_id("8d0f2b4e-6a3c-4e1f-9b7a-2c5d8e1f0a3b"));
        assert!(!is_imported_key_id(&format!("{}g", &a[1..])));
    }
}
