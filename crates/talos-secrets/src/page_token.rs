//! Stateless page tokens: NaCl secretbox (XSalsa20-Poly1305) over the list cursor, keyed by the cursor key.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use uuid::Uuid;
use xsalsa20poly1305::aead::{AeadInPlace, KeyInit};
use xsalsa20poly1305::{Key, Nonce, Tag, XSalsa20Poly1305};

use crate::{KeyEntry, Keyring, SecretsError};

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const VERSION: u8 = 1;
/// Plaintext header: version byte and the 16-byte network id.
const HEADER_LEN: usize = 1 + 16;
/// Longest `last_key_id` a token can carry.
const MAX_KEY_ID_LEN: usize = 512;
/// Longest page token (in characters) [`open_page_token`] looks at; longer ones are invalid.
pub const MAX_PAGE_TOKEN_LEN: usize = 1024;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);

/// The position of a list: the last key id returned and the network the list ran in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The id of the last item of the previous page.
    pub last_key_id: String,
    /// The network (tenant) id.
    pub nid: Uuid,
}

/// Seals `cursor` into an opaque page token with `entry`'s cursor key (use the keyring's current entry).
///
/// Output: unpadded base64url of `nonce(24) ‖ secretbox(plaintext)` where the secretbox output is
/// `tag(16) ‖ ciphertext` (NaCl layout) and the plaintext is `0x01 ‖ nid(16 bytes) ‖ last_key_id (UTF-8)`.
/// A `last_key_id` longer than 512 bytes is truncated at a character boundary (key ids are 36 or 64 chars).
pub fn seal_page_token(entry: &KeyEntry, cursor: &Cursor) -> String {
    let key_id = truncate_utf8(&cursor.last_key_id, MAX_KEY_ID_LEN);
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut buf = Vec::with_capacity(NONCE_LEN + TAG_LEN + HEADER_LEN + key_id.len());
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(&[0u8; TAG_LEN]);
    buf.push(VERSION);
    buf.extend_from_slice(cursor.nid.as_bytes());
    buf.extend_from_slice(key_id.as_bytes());
    let cipher = XSalsa20Poly1305::new(Key::from_slice(entry.cursor_key()));
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            b"",
            &mut buf[NONCE_LEN + TAG_LEN..],
        )
        .expect("secretbox without associated data cannot fail");
    buf[NONCE_LEN..NONCE_LEN + TAG_LEN].copy_from_slice(&tag);
    BASE64_URL_SAFE_NO_PAD.encode(buf)
}

/// Opens a page token, trying every secret of `keyring` (current, then retired).
///
/// Accepts base64url or standard base64, with or without `=` padding. Errors:
/// [`SecretsError::InvalidPageToken`] for anything that is not a token sealed by one of the keyring's secrets,
/// [`SecretsError::PageTokenNetworkMismatch`] for a genuine token of another network.
pub fn open_page_token(
    keyring: &Keyring,
    token: &str,
    expected_nid: Uuid,
) -> Result<Cursor, SecretsError> {
    if token.len() > MAX_PAGE_TOKEN_LEN {
        return Err(SecretsError::InvalidPageToken);
    }
    let engine = if token.bytes().any(|b| b == b'+' || b == b'/') {
        &STANDARD_LENIENT
    } else {
        &URL_SAFE_LENIENT
    };
    let raw = engine
        .decode(token)
        .map_err(|_| SecretsError::InvalidPageToken)?;
    if raw.len() < NONCE_LEN + TAG_LEN + HEADER_LEN {
        return Err(SecretsError::InvalidPageToken);
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let (tag, ciphertext) = rest.split_at(TAG_LEN);
    let nonce = Nonce::from_slice(nonce);
    let tag = Tag::from_slice(tag);
    let mut plain = vec![0u8; ciphertext.len()];
    for entry in keyring.iter() {
        plain.copy_from_slice(ciphertext);
        let cipher = XSalsa20Poly1305::new(Key::from_slice(entry.cursor_key()));
        if cipher
            .decrypt_in_place_detached(nonce, b"", &mut plain, tag)
            .is_ok()
        {
            return decode_plaintext(&plain, expected_nid);
        }
    }
    Err(SecretsError::InvalidPageToken)
}

fn decode_plaintext(plain: &[u8], expected_nid: Uuid) -> Result<Cursor, SecretsError> {
    let (header, key_id) = plain.split_at(HEADER_LEN);
    if header[0] != VERSION {
        return Err(SecretsError::InvalidPageToken);
    }
    let nid = Uuid::from_slice(&header[1..]).map_err(|_| SecretsError::InvalidPageToken)?;
    let last_key_id = std::str::from_utf8(key_id).map_err(|_| SecretsError::InvalidPageToken)?;
    if nid != expected_nid {
        return Err(SecretsError::PageTokenNetworkMismatch);
    }
    Ok(Cursor {
        last_key_id: last_key_id.to_owned(),
        nid,
    })
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RetiredSecret, Secret};
    use base64::prelude::{BASE64_STANDARD, BASE64_URL_SAFE};
    use chrono::Utc;

    fn keyring(cur: &str, retired: &[&str]) -> Keyring {
        let retired: Vec<_> = retired.iter().map(|s| RetiredSecret::new(*s)).collect();
        Keyring::new(Some(&Secret::new(cur)), &retired, Utc::now())
    }

    fn cursor(nid: Uuid) -> Cursor {
        Cursor {
            last_key_id: "0b0f5a4e-4e0e-4b71-9a55-1f8d0b7f2c11".into(),
            nid,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let kr = keyring("secret-a-secret-a-secret-a-secret-a", &[]);
        let nid = Uuid::new_v4();
        let token = seal_page_token(kr.current().unwrap(), &cursor(nid));
        assert!(!token.contains('='));
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let raw = BASE64_URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert_eq!(raw.len(), 24 + 16 + 1 + 16 + 36);
        assert_eq!(open_page_token(&kr, &token, nid).unwrap(), cursor(nid));
        // Random nonce: two seals differ.
        assert_ne!(token, seal_page_token(kr.current().unwrap(), &cursor(nid)));
    }

    #[test]
    fn layout_is_nacl_secretbox() {
        // Decrypt with the combined-mode AEAD API (tag ‖ ciphertext), independent of the detached code above.
        use xsalsa20poly1305::aead::Aead;
        let kr = keyring("secret-a-secret-a-secret-a-secret-a", &[]);
        let nid = Uuid::new_v4();
        let token = seal_page_token(kr.current().unwrap(), &cursor(nid));
        let raw = BASE64_URL_SAFE_NO_PAD.decode(&token).unwrap();
        let cipher = XSalsa20Poly1305::new(Key::from_slice(kr.current().unwrap().cursor_key()));
        let plain = cipher
            .decrypt(Nonce::from_slice(&raw[..24]), &raw[24..])
            .unwrap();
        assert_eq!(plain[0], 1);
        assert_eq!(&plain[1..17], nid.as_bytes());
        assert_eq!(&plain[17..], cursor(nid).last_key_id.as_bytes());
    }

    #[test]
    fn accepts_padding_and_standard_alphabet() {
        let kr = keyring("secret-a-secret-a-secret-a-secret-a", &[]);
        let nid = Uuid::nil();
        for _ in 0..20 {
            let token = seal_page_token(kr.current().unwrap(), &cursor(nid));
            let raw = BASE64_URL_SAFE_NO_PAD.decode(&token).unwrap();
            for t in [BASE64_URL_SAFE.encode(&raw), BASE64_STANDARD.encode(&raw)] {
                assert_eq!(open_page_token(&kr, &t, nid).unwrap(), cursor(nid));
            }
            let unpadded_std = BASE64_STANDARD
                .encode(&raw)
                .trim_end_matches('=')
                .to_owned();
            assert_eq!(
                open_page_token(&kr, &unpadded_std, nid).unwrap(),
                cursor(nid)
            );
        }
    }

    #[test]
    fn retired_secret_opens_and_unknown_does_not() {
        let old = keyring("secret-old-secret-old-secret-old-0", &[]);
        let nid = Uuid::new_v4();
        let token = seal_page_token(old.current().unwrap(), &cursor(nid));
        let rotated = keyring(
            "secret-new-secret-new-secret-new-0",
            &["secret-old-secret-old-secret-old-0"],
        );
        assert_eq!(open_page_token(&rotated, &token, nid).unwrap(), cursor(nid));
        let forgotten = keyring("secret-new-secret-new-secret-new-0", &[]);
        assert_eq!(
            open_page_token(&forgotten, &token, nid),
            Err(SecretsError::InvalidPageToken)
        );
        assert_eq!(
            open_page_token(&Keyring::default(), &token, nid),
            Err(SecretsError::InvalidPageToken)
        );
    }

    #[test]
    fn network_mismatch() {
        let kr = keyring("secret-a-secret-a-secret-a-secret-a", &[]);
        let token = seal_page_token(kr.current().unwrap(), &cursor(Uuid::new_v4()));
        let err = open_page_token(&kr, &token, Uuid::new_v4()).unwrap_err();
        assert_eq!(err, SecretsError::PageTokenNetworkMismatch);
        assert_eq!(err.to_string(), "page token network mismatch");
    }

    #[test]
    fn tampering_and_garbage() {
        let kr = keyring("secret-a-secret-a-secret-a-secret-a", &[]);
        let nid = Uuid::new_v4();
        let token = seal_page_token(kr.current().unwrap(), &cursor(nid));
        let raw = BASE64_URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            let err = open_page_token(&kr, &BASE64_URL_SAFE_NO_PAD.encode(&t), nid).unwrap_err();
            assert_eq!(err, SecretsError::InvalidPageToken);
            assert_eq!(err.to_string(), "invalid page token");
        }
        let long = "A".repeat(MAX_PAGE_TOKEN_LEN + 4);
        for garbage in ["", "!!!", "abc", "a=b", &token[..token.len() - 1], &long] {
            assert_eq!(
                open_page_token(&kr, garbage, nid),
                Err(SecretsError::InvalidPageToken),
                "{garbage}"
            );
        }
    }

    #[test]
    fn long_and_unicode_key_ids() {
        let kr = keyring("secret-a-secret-a-secret-a-secret-a", &[]);
        let nid = Uuid::new_v4();
        let c = Cursor {
            last_key_id: "é".repeat(300),
            nid,
        };
        let opened =
            open_page_token(&kr, &seal_page_token(kr.current().unwrap(), &c), nid).unwrap();
        assert_eq!(opened.last_key_id, "é".repeat(256));
        let c = Cursor {
            last_key_id: String::new(),
            nid,
        };
        let opened =
            open_page_token(&kr, &seal_page_token(kr.current().unwrap(), &c), nid).unwrap();
        assert_eq!(opened, c);
    }
}
