//! [`Secret`] and [`RetiredSecret`]: secret strings that never leak through `Debug`, `Display` or `Serialize`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

use crate::SecretsError;

/// Minimum length (in characters) of `secrets.hmac.current`.
pub const MIN_SECRET_LEN: usize = 32;

const REDACTED: &str = "[REDACTED]";

/// A secret string (an HMAC secret).
///
/// `Debug`, `Display` and `Serialize` all print `[REDACTED]`; equality is constant-time.
/// `Deserialize` reads a plain string.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log or return what this gives you.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in characters (Unicode scalar values).
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks that the secret has at least `min` characters.
    ///
    /// The error names `path` and the lengths, e.g.
    /// `secrets.hmac.current must be at least 32 characters (got 12)`, never the value.
    pub fn validate(&self, path: &str, min: usize) -> Result<(), SecretsError> {
        let got = self.char_len();
        if got < min {
            return Err(SecretsError::SecretTooShort {
                path: path.to_owned(),
                min,
                got,
            });
        }
        Ok(())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // Constant time in the content; the length is not hidden.
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any` so that a non-string reaches our visitor, whose errors never quote the value
        // (serde's default "invalid type: integer `123…`" would).
        deserializer.deserialize_any(SecretVisitor)
    }
}

const NOT_A_STRING: &str = "a secret must be a string (quote it)";

/// Implements the scalar `visit_*` methods of a visitor with an error that does not quote the value.
macro_rules! reject_scalars {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_char<E: de::Error>(self, _: char) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }
    };
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }

    reject_scalars!();
}

/// A retired secret: accepted during verification only, optionally until `expires_at`.
///
/// Deserializes from a plain string or from `{value, expires_at}` (`expires_at` in RFC 3339).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetiredSecret {
    /// The secret value.
    pub secret: Secret,
    /// When the secret stops being accepted; `None` = never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl RetiredSecret {
    /// A retired secret that never expires.
    pub fn new(secret: impl Into<Secret>) -> Self {
        RetiredSecret {
            secret: secret.into(),
            expires_at: None,
        }
    }

    /// A retired secret accepted until (excluding) `expires_at`.
    pub fn expiring(secret: impl Into<Secret>, expires_at: DateTime<Utc>) -> Self {
        RetiredSecret {
            secret: secret.into(),
            expires_at: Some(expires_at),
        }
    }

    /// Whether the secret is expired at `now` (`now >= expires_at`).
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|exp| now >= exp)
    }
}

impl From<Secret> for RetiredSecret {
    fn from(secret: Secret) -> Self {
        RetiredSecret::new(secret)
    }
}

impl Serialize for RetiredSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("value", &self.secret)?;
        if let Some(exp) = &self.expires_at {
            map.serialize_entry("expires_at", &exp.to_rfc3339())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RetiredSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RetiredVisitor)
    }
}

struct RetiredVisitor;

impl<'de> Visitor<'de> for RetiredVisitor {
    type Value = RetiredSecret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret string or an object {value, expires_at}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RetiredSecret, E> {
        Ok(RetiredSecret::new(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<RetiredSecret, E> {
        Ok(RetiredSecret::new(v))
    }

    reject_scalars!();

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RetiredSecret, A::Error> {
        let mut value: Option<Secret> = None;
        let mut expires_at: Option<Option<DateTime<Utc>>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "value" => {
                    if value.is_some() {
                        return Err(de::Error::duplicate_field("value"));
                    }
                    value = Some(map.next_value()?);
                }
                "expires_at" => {
                    if expires_at.is_some() {
                        return Err(de::Error::duplicate_field("expires_at"));
                    }
                    let raw: Option<String> = map.next_value()?;
                    expires_at = Some(match raw.as_deref() {
                        None | Some("") => None,
                        Some(s) => Some(parse_rfc3339(s).map_err(de::Error::custom)?),
                    });
                }
                other => {
                    return Err(de::Error::unknown_field(other, &["value", "expires_at"]));
                }
            }
        }
        let secret = value.ok_or_else(|| de::Error::missing_field("value"))?;
        Ok(RetiredSecret {
            secret,
            expires_at: expires_at.flatten(),
        })
    }
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("expires_at {s:?} is not an RFC 3339 time: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_serialize_redact() {
        let s = Secret::new("super-secret-value-super-secret-value");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{s}"), "[REDACTED]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        let r = RetiredSecret::new("another-secret-value");
        assert!(!format!("{r:?}").contains("another"));
        assert!(!serde_json::to_string(&r).unwrap().contains("another"));
    }

    #[test]
    fn equality() {
        assert_eq!(Secret::new("abc"), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
    }

    #[test]
    fn deserialize_secret() {
        let s: Secret = serde_json::from_str("\"hello\"").unwrap();
        assert_eq!(s.expose(), "hello");
        for bad in [
            "1234567890123",
            "-98765",
            "1.25e7",
            "true",
            "[\"abc\"]",
            "{\"a\":\"abcdef\"}",
        ] {
            let err = serde_json::from_str::<Secret>(bad).unwrap_err().to_string();
            for leak in ["1234567890123", "98765", "1.25", "abc", "true"] {
                assert!(!err.contains(leak), "{bad}: {err}");
            }
            let err = serde_json::from_str::<RetiredSecret>(bad)
                .unwrap_err()
                .to_string();
            for leak in ["1234567890123", "98765", "1.25", "abc", "true"] {
                assert!(!err.contains(leak), "{bad}: {err}");
            }
        }
        let err = serde_json::from_str::<RetiredSecret>(r#"{"value": 4242424242}"#).unwrap_err();
        assert!(!err.to_string().contains("4242424242"), "{err}");
    }

    #[test]
    fn validate_length() {
        let s = Secret::new("short-secret");
        let err = s.validate("secrets.hmac.current", 32).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secrets.hmac.current must be at least 32 characters (got 12)"
        );
        assert!(!format!("{err:?}").contains("short-secret"));
        assert!(Secret::new("x".repeat(32)).validate("p", 32).is_ok());
        // Characters, not bytes.
        assert!(Secret::new("é".repeat(31)).validate("p", 32).is_err());
    }

    #[test]
    fn retired_forms() {
        let r: RetiredSecret = serde_json::from_str("\"plain\"").unwrap();
        assert_eq!(r.secret.expose(), "plain");
        assert_eq!(r.expires_at, None);

        let r: RetiredSecret =
            serde_json::from_str(r#"{"value":"v","expires_at":"2026-03-01T00:00:00Z"}"#).unwrap();
        assert_eq!(r.secret.expose(), "v");
        assert_eq!(
            r.expires_at.unwrap().to_rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );

        let r: RetiredSecret =
            serde_json::from_str(r#"{"value":"v","expires_at":"2026-03-01T02:00:00+02:00"}"#)
                .unwrap();
        assert_eq!(
            r.expires_at.unwrap().to_rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );

        let r: RetiredSecret = serde_json::from_str(r#"{"value":"v"}"#).unwrap();
        assert_eq!(r.expires_at, None);
        let r: RetiredSecret = serde_json::from_str(r#"{"value":"v","expires_at":null}"#).unwrap();
        assert_eq!(r.expires_at, None);

        for bad in [
            r#"{"expires_at":"2026-03-01T00:00:00Z"}"#,
            r#"{"value":"v","expires_at":"yesterday"}"#,
            r#"{"value":"v","expire_at":"2026-03-01T00:00:00Z"}"#,
            "12",
            "[]",
        ] {
            let err = serde_json::from_str::<RetiredSecret>(bad).unwrap_err();
            assert!(!err.to_string().contains("\"v\""), "{err}");
        }
    }

    #[test]
    fn retired_expiry() {
        let exp = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = RetiredSecret::expiring("v", exp);
        assert!(!r.is_expired_at(exp - chrono::Duration::seconds(1)));
        assert!(r.is_expired_at(exp));
        assert!(!RetiredSecret::new("v").is_expired_at(exp));
    }
}
