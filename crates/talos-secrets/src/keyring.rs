//! [`Keyring`] and [`KeyEntry`]: the configured HMAC secrets with their derived keys precomputed.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{RetiredSecret, Secret, SecretsError};

type HmacSha256 = Hmac<Sha256>;

/// Domain string of the macaroon root key.
pub const MACAROON_ROOT_KEY_DOMAIN: &str = "talos/macaroon/v1/root-key";
/// Domain string of the page-token cursor key.
pub const CURSOR_KEY_DOMAIN: &str = "talos/pagination/v1/cursor-key";
/// Domain string of the (non-secret) secret id.
pub const SECRET_ID_DOMAIN: &str = "talos/secret-id/v1";

fn keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this never fails.
    <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// `HMAC-SHA256(key = secret, message = domain)`.
pub fn derive_key(secret: &[u8], domain: &str) -> [u8; 32] {
    let mut mac = keyed(secret);
    mac.update(domain.as_bytes());
    mac.finalize().into_bytes().into()
}

/// One secret of a [`Keyring`] with everything derived from it precomputed.
///
/// Holds a keyed HMAC-SHA256 state (cloned per MAC, so the key schedule runs once), the macaroon root key, the
/// page-token cursor key and a non-secret id. The secret itself is not kept. `Debug` shows only the id and role.
#[derive(Clone)]
pub struct KeyEntry {
    mac: HmacSha256,
    macaroon_root_key: [u8; 32],
    cursor_key: [u8; 32],
    id: String,
    current: bool,
    expires_at: Option<DateTime<Utc>>,
}

impl KeyEntry {
    /// Derives an entry from a secret. The entry counts as current and never expires; [`Keyring::new`] sets the
    /// role of retired entries.
    pub fn new(secret: &Secret) -> Self {
        let bytes = secret.expose().as_bytes();
        let id_mac = derive_key(bytes, SECRET_ID_DOMAIN);
        KeyEntry {
            mac: keyed(bytes),
            macaroon_root_key: derive_key(bytes, MACAROON_ROOT_KEY_DOMAIN),
            cursor_key: derive_key(bytes, CURSOR_KEY_DOMAIN),
            id: hex::encode(&id_mac[..8]),
            current: true,
            expires_at: None,
        }
    }

    /// `HMAC-SHA256(secret, parts[0] ‖ parts[1] ‖ …)`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check that `tag` equals [`KeyEntry::mac`] of `parts`.
    pub fn verify_mac(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac(parts).ct_eq(tag).into()
    }

    /// The macaroon root key, `HMAC-SHA256(secret, "talos/macaroon/v1/root-key")`.
    pub fn macaroon_root_key(&self) -> &[u8; 32] {
        &self.macaroon_root_key
    }

    /// The page-token cursor key, `HMAC-SHA256(secret, "talos/pagination/v1/cursor-key")`.
    pub fn cursor_key(&self) -> &[u8; 32] {
        &self.cursor_key
    }

    /// A stable, non-secret id of the secret: 16 lowercase hex chars of `HMAC-SHA256(secret, "talos/secret-id/v1")`.
    /// Safe to store and log; used to record which secret hashed an imported key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this entry is the keyring's current secret.
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// When a retired entry stops being accepted (`None` = never, and always `None` for the current secret).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// Whether the entry is expired at `now` (`now >= expires_at`).
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|exp| now >= exp)
    }
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.id)
            .field("current", &self.current)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The configured HMAC secrets: the current one (optional) followed by the retired ones, in configuration order.
///
/// Iteration order is the verification order: current, then retired. Entries with the same secret are kept once.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    entries: Vec<KeyEntry>,
    has_current: bool,
}

impl Keyring {
    /// Builds a keyring. Retired secrets already expired at `now` are dropped; duplicates (same secret as an
    /// earlier entry) are dropped too. A keyring without a current secret is valid: it still verifies with the
    /// retired secrets, but [`Keyring::current`] fails.
    pub fn new(current: Option<&Secret>, retired: &[RetiredSecret], now: DateTime<Utc>) -> Self {
        let mut entries: Vec<KeyEntry> = Vec::with_capacity(1 + retired.len());
        let has_current = current.is_some();
        if let Some(secret) = current {
            entries.push(KeyEntry::new(secret));
        }
        for r in retired {
            if r.is_expired_at(now) {
                continue;
            }
            let mut entry = KeyEntry::new(&r.secret);
            if entries.iter().any(|e| e.id == entry.id) {
                continue;
            }
            entry.current = false;
            entry.expires_at = r.expires_at;
            entries.push(entry);
        }
        Keyring {
            entries,
            has_current,
        }
    }

    /// A keyring with only a current secret.
    pub fn from_current(current: &Secret) -> Self {
        Keyring {
            entries: vec![KeyEntry::new(current)],
            has_current: true,
        }
    }

    /// The current secret, used for everything new (issuing, hashing imports, minting tokens, page tokens).
    ///
    /// Fails with [`SecretsError::NoCurrentKey`] (`project has no HMAC key configured`) when none is configured.
    pub fn current(&self) -> Result<&KeyEntry, SecretsError> {
        if self.has_current {
            self.entries.first().ok_or(SecretsError::NoCurrentKey)
        } else {
            Err(SecretsError::NoCurrentKey)
        }
    }

    /// Whether a current secret is configured.
    pub fn has_current(&self) -> bool {
        self.has_current
    }

    /// The entries live right now, in verification order: current, then retired. A retired
    /// secret stops being accepted the instant its `expires_at` passes, without a rebuild: the
    /// clock is read on every call (only when some entry can expire), so a long-lived keyring
    /// never verifies with an expired secret.
    pub fn iter(&self) -> Live<'_> {
        Live {
            inner: self.entries.iter(),
            now: self
                .entries
                .iter()
                .any(|e| e.expires_at.is_some())
                .then(Utc::now),
        }
    }

    /// Like [`Keyring::iter`], skipping retired entries expired at `now` (for long-lived keyrings).
    pub fn iter_at(&self, now: DateTime<Utc>) -> impl Iterator<Item = &KeyEntry> + '_ {
        self.entries.iter().filter(move |e| !e.is_expired_at(now))
    }

    /// The retired entries, in configuration order.
    pub fn retired(&self) -> &[KeyEntry] {
        let skip = usize::from(self.has_current).min(self.entries.len());
        &self.entries[skip..]
    }

    /// A copy without the retired entries expired at `now`.
    pub fn pruned(&self, now: DateTime<Utc>) -> Keyring {
        Keyring {
            entries: self.iter_at(now).cloned().collect(),
            has_current: self.has_current,
        }
    }

    /// The entry with the given [`KeyEntry::id`], if it is live now.
    pub fn get(&self, id: &str) -> Option<&KeyEntry> {
        self.iter().find(|e| e.id == id)
    }

    /// Whether no secret at all is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries (current plus unexpired, de-duplicated retired).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The entries of a [`Keyring`] live at the instant the iteration started.
#[derive(Clone, Debug)]
pub struct Live<'a> {
    inner: std::slice::Iter<'a, KeyEntry>,
    now: Option<DateTime<Utc>>,
}

impl<'a> Iterator for Live<'a> {
    type Item = &'a KeyEntry;

    fn next(&mut self) -> Option<&'a KeyEntry> {
        let now = self.now;
        self.inner
            .by_ref()
            .find(|e| now.is_none_or(|now| !e.is_expired_at(now)))
    }
}

impl<'a> IntoIterator for &'a Keyring {
    type Item = &'a KeyEntry;
    type IntoIter = Live<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn derive_key_is_hmac_of_domain() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let got = derive_key(b"Jefe", "what do ya want for nothing?");
        assert_eq!(
            hex::encode(got),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let e = KeyEntry::new(&Secret::new("Jefe"));
        assert_eq!(e.mac(&[b"what do ya ", b"want for nothing?"]), got);
        assert_eq!(e.mac(&[b"what do ya want for nothing?"]), got);
        assert!(e.verify_mac(&[b"what do ya want for nothing?"], &got));
        assert!(!e.verify_mac(&[b"what do ya want for nothing!"], &got));
        assert!(!e.verify_mac(&[b"what do ya want for nothing?"], &got[..31]));
    }

    #[test]
    fn derived_keys_use_their_domains() {
        let secret = Secret::new("preview-hmac-secret-minimum-32-chars-long");
        let e = KeyEntry::new(&secret);
        let b = secret.expose().as_bytes();
        assert_eq!(
            e.macaroon_root_key(),
            &derive_key(b, "talos/macaroon/v1/root-key")
        );
        assert_eq!(
            e.cursor_key(),
            &derive_key(b, "talos/pagination/v1/cursor-key")
        );
        assert_eq!(
            e.id(),
            &hex::encode(derive_key(b, "talos/secret-id/v1"))[..16]
        );
        assert_eq!(e.id().len(), 16);
        assert_ne!(e.macaroon_root_key(), e.cursor_key());
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("preview"), "{dbg}");
    }

    #[test]
    fn keyring_order_expiry_and_dedup() {
        let now = t("2026-06-01T00:00:00Z");
        let cur = Secret::new("current-secret-current-secret-0000");
        let retired = vec![
            RetiredSecret::new("retired-one-retired-one-retired-one"),
            RetiredSecret::expiring(
                "retired-expired-xxxxxxxxxxxxxxxxxxxx",
                t("2026-05-01T00:00:00Z"),
            ),
            RetiredSecret::expiring(
                "retired-later-xxxxxxxxxxxxxxxxxxxxxx",
                t("2026-07-01T00:00:00Z"),
            ),
            RetiredSecret::new("current-secret-current-secret-0000"),
            RetiredSecret::new("retired-one-retired-one-retired-one"),
        ];
        let kr = Keyring::new(Some(&cur), &retired, now);
        assert_eq!(kr.len(), 3);
        assert!(!kr.is_empty());
        let ids: Vec<_> = kr.iter_at(now).map(|e| e.id().to_owned()).collect();
        assert_eq!(ids[0], KeyEntry::new(&cur).id());
        assert_eq!(ids[1], KeyEntry::new(&retired[0].secret).id());
        assert_eq!(ids[2], KeyEntry::new(&retired[2].secret).id());
        assert!(kr.current().unwrap().is_current());
        assert_eq!(kr.retired().len(), 2);
        assert!(kr.retired().iter().all(|e| !e.is_current()));
        assert_eq!(kr.iter_at(t("2026-06-30T00:00:00Z")).count(), 3);
        assert_eq!(kr.iter_at(t("2026-07-01T00:00:00Z")).count(), 2);
        assert_eq!(kr.pruned(t("2026-08-01T00:00:00Z")).len(), 2);
        // `iter`, `get` and `into_iter` read the wall clock (today is past 2026-07-01).
        assert!(kr.get(&ids[1]).is_some());
        assert!(kr.get(&ids[2]).is_none(), "expired by the wall clock");
        assert!(kr.get("0000000000000000").is_none());
        assert_eq!((&kr).into_iter().count(), 2);
    }

    #[test]
    fn no_current_key() {
        let now = t("2026-06-01T00:00:00Z");
        let kr = Keyring::new(None, &[RetiredSecret::new("old-old-old")], now);
        assert!(!kr.has_current());
        let err = kr.current().unwrap_err();
        assert_eq!(err, SecretsError::NoCurrentKey);
        assert_eq!(err.to_string(), "project has no HMAC key configured");
        assert_eq!(kr.iter().count(), 1);
        assert_eq!(kr.retired().len(), 1);

        let empty = Keyring::default();
        assert!(empty.is_empty());
        assert!(empty.current().is_err());
        assert!(empty.retired().is_empty());
    }
}
