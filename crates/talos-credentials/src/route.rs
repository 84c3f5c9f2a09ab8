//! Credential routing: which verifier a presented credential goes to.
//!
//! First match wins:
//! 1. `^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$` → [`Credential::Jwt`];
//! 2. starts with `<macaroon prefix>_v1_` for a configured macaroon prefix → [`Credential::Macaroon`];
//! 3. parses as an issued key (any prefix) → [`Credential::Issued`];
//! 4. has the issued-key shape ([`looks_issued`]) or starts with a configured `<issued prefix>_v1_` but does not
//!    parse → [`Credential::MalformedIssued`] (verification answers NOT_FOUND without I/O);
//! 5. anything else → [`Credential::Imported`].
//!
//! Import refuses every raw key that does not classify as [`Credential::Imported`].

use crate::issued::{self, ParsedKey};

/// A classified credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A derived JWT.
    Jwt(&'a str),
    /// A derived macaroon (the whole token, prefix included).
    Macaroon(&'a str),
    /// A well-formed issued key (checksum not yet verified).
    Issued(ParsedKey<'a>),
    /// Looks like an issued key but does not parse.
    MalformedIssued(&'a str),
    /// Anything else: looked up as an imported key.
    Imported(&'a str),
}

impl Credential<'_> {
    /// Whether this is a derived token (JWT or macaroon).
    pub fn is_derived(&self) -> bool {
        matches!(self, Credential::Jwt(_) | Credential::Macaroon(_))
    }

    /// Whether this is (or looks like) an issued key.
    pub fn is_issued_shaped(&self) -> bool {
        matches!(self, Credential::Issued(_) | Credential::MalformedIssued(_))
    }

    /// Whether this goes to the imported-key lookup.
    pub fn is_imported(&self) -> bool {
        matches!(self, Credential::Imported(_))
    }
}

/// Classifies a credential. Pure and cheap: no I/O, no allocation.
pub fn classify<'a, I: AsRef<str>, M: AsRef<str>>(
    credential: &'a str,
    issued_prefixes: &[I],
    macaroon_prefixes: &[M],
) -> Credential<'a> {
    if is_jwt_shaped(credential) {
        return Credential::Jwt(credential);
    }
    if macaroon_prefix(credential, macaroon_prefixes).is_some() {
        return Credential::Macaroon(credential);
    }
    if let Some(parsed) = issued::parse(credential) {
        return Credential::Issued(parsed);
    }
    if looks_issued(credential) || has_versioned_prefix(credential, issued_prefixes) {
        return Credential::MalformedIssued(credential);
    }
    Credential::Imported(credential)
}

/// Whether `raw` matches the issued-key regex and its identifier decodes (≤128 characters, 20..=60 bytes),
/// whatever the prefix.
pub fn looks_issued(raw: &str) -> bool {
    issued::shape(raw).is_some_and(|s| issued::decode_identifier(s.identifier).is_some())
}

/// Whether `s` matches `^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`.
pub fn is_jwt_shaped(s: &str) -> bool {
    if !s.starts_with("eyJ") {
        return false;
    }
    let mut segments = 0;
    for segment in s.split('.') {
        segments += 1;
        if segments > 3
            || segment.is_empty()
            || !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    segments == 3
}

/// The configured macaroon prefix `p` for which `s` starts with `<p>_v1_`, if any.
pub fn macaroon_prefix<'p, M: AsRef<str>>(s: &str, macaroon_prefixes: &'p [M]) -> Option<&'p str> {
    macaroon_prefixes
        .iter()
        .map(AsRef::as_ref)
        .find(|p| starts_with_versioned(s, p))
}

fn has_versioned_prefix<I: AsRef<str>>(s: &str, prefixes: &[I]) -> bool {
    prefixes
        .iter()
        .any(|p| starts_with_versioned(s, p.as_ref()))
}

/// `s` starts with `<prefix>_v1_` (an empty prefix never matches).
pub(crate) fn starts_with_versioned(s: &str, prefix: &str) -> bool {
    !prefix.is_empty()
        && s.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(issued::VERSION_MARKER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use talos_secrets::{KeyEntry, Secret};
    use uuid::Uuid;

    const ISSUED: &[&str] = &["talos", "my_app"];
    const MAC: &[&str] = &["mc"];

    fn classify(s: &str) -> Credential<'_> {
        super::classify(s, ISSUED, MAC)
    }

    fn key(prefix: &str) -> String {
        let e = KeyEntry::new(&Secret::new("preview-hmac-secret-minimum-32-chars-long"));
        issued::generate(&e, prefix, 1_700_000_000, Uuid::new_v4())
    }

    #[test]
    fn jwt_shape() {
        for ok in ["eyJa.b.c", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.sig-_0"] {
            assert!(is_jwt_shaped(ok), "{ok}");
            assert!(matches!(classify(ok), Credential::Jwt(_)));
        }
        for bad in [
            "eyJ",
            "eyJa.b",
            "eyJa.b.c.d",
            "eyJa..c",
            "eyJa.b.",
            "eyJa.b.c=",
            "eyJa.b.c ",
            "xeyJa.b.c",
            "eyJa.b/c.d",
        ] {
            assert!(!is_jwt_shaped(bad), "{bad}");
        }
    }

    #[test]
    fn macaroons() {
        assert!(matches!(classify("mc_v1_AgEA"), Credential::Macaroon(_)));
        assert!(matches!(classify("mc_v1_"), Credential::Macaroon(_)));
        assert!(matches!(classify("mc_v2_AgEA"), Credential::Imported(_)));
        assert!(matches!(classify("mcx_v1_AgEA"), Credential::Imported(_)));
        assert_eq!(macaroon_prefix("mc_v1_x", MAC), Some("mc"));
        assert_eq!(macaroon_prefix("mc_v1_x", &[""]), None);
    }

    #[test]
    fn issued_keys() {
        for prefix in ["talos", "my_app", "other"] {
            let k = key(prefix);
            match classify(&k) {
                Credential::Issued(p) => assert_eq!(p.prefix(), prefix),
                other => panic!("{other:?}"),
            }
            assert!(looks_issued(&k));
        }
    }

    #[test]
    fn malformed_issued() {
        let k = key("talos");
        let cases = [
            "talos_v1_".to_owned(),
            "talos_v1_garbage".to_owned(),
            format!("{k}x_"),
            format!("{}0OIl", &k),
            "my_app_v1_short".to_owned(),
        ];
        for c in &cases {
            assert!(matches!(classify(c), Credential::MalformedIssued(_)), "{c}");
        }
        // Issued shape with an unconfigured prefix whose identifier decodes but is not "<secs>:<uuid>".
        let odd = format!(
            "zzz_v1_{}_{}",
            bs58::encode([b'a'; 30]).into_string(),
            "2".repeat(44)
        );
        assert!(looks_issued(&odd));
        assert!(matches!(classify(&odd), Credential::MalformedIssued(_)));
        // Unconfigured prefix that does not have the shape: imported.
        assert!(matches!(
            classify("zzz_v1_garbage"),
            Credential::Imported(_)
        ));
    }

    #[test]
    fn imported() {
        for raw in [
            "sk_live_abcdef",
            "",
            "x",
            "talos_v2_abc",
            "TALOS_v1_abc",
            "eyJ",
            "some key with spaces",
        ] {
            assert!(classify(raw).is_imported(), "{raw}");
            assert!(!looks_issued(raw));
        }
        // An identifier with a character outside the alphabet (only the decoder checks it): not
        // issued-shaped, so a configured prefix is a malformed key and any other imports.
        for bad in ['0', 'O', 'I', 'l', '-', '+'] {
            let mut ident = bs58::encode([b'a'; 30]).into_string();
            ident.replace_range(5..6, &bad.to_string());
            let checksum = "2".repeat(44);
            let other = format!("zzz_v1_{ident}_{checksum}");
            assert!(!looks_issued(&other), "{other}");
            assert!(classify(&other).is_imported(), "{other}");
            let configured = format!("talos_v1_{ident}_{checksum}");
            assert!(
                matches!(classify(&configured), Credential::MalformedIssued(_)),
                "{configured}"
            );
        }
        // An identifier too long to decode is not issued-shaped for import purposes.
        let long = format!("zzz_v1_{}_{}", "2".repeat(129), "2".repeat(44));
        assert!(!looks_issued(&long));
        assert!(classify(&long).is_imported());
    }

    #[test]
    fn precedence() {
        // A macaroon prefix wins over an identical issued prefix.
        let k = key("mc");
        assert!(matches!(classify(&k), Credential::Macaroon(_)));
        assert!(classify("eyJa.b.c").is_derived());
        assert!(classify(&key("talos")).is_issued_shaped());
    }
}
