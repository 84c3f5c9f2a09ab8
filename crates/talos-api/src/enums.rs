//! The enum tables of the wire format: every protobuf enum with its names and numbers.
//!
//! Each enum serializes by its full name (`KEY_STATUS_ACTIVE`). Decoding has two modes:
//! - lenient (the type's own `Deserialize`, used for responses): full or short names in any case,
//!   or numbers; anything unknown reads as `Unspecified`, so a newer server never breaks an older
//!   client;
//! - strict ([`WireEnum::parse_strict`], used by request fields the server decodes): a full name
//!   (any case) or an in-range number; anything else is an error naming the accepted values.

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use serde_json::Value;

/// A protobuf enum of the wire format.
pub trait WireEnum: Sized + Copy + 'static {
    /// The wire names, indexed by protobuf number.
    const NAMES: &'static [&'static str];
    /// The variants, indexed by protobuf number.
    const VARIANTS: &'static [Self];

    /// Strict decoding of a JSON value: `null` is `None`; a full name (case-insensitive) or an
    /// in-range number is the variant; anything else is an error naming the accepted values.
    fn parse_strict(v: &Value) -> Result<Option<Self>, String> {
        let idx = match v {
            Value::Null => return Ok(None),
            Value::String(s) => Self::NAMES.iter().position(|n| n.eq_ignore_ascii_case(s)),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n < Self::NAMES.len()),
            _ => None,
        };
        idx.map(|i| Some(Self::VARIANTS[i])).ok_or_else(|| {
            format!(
                "unknown enum value {v}; expected one of {}",
                Self::NAMES.join(", ")
            )
        })
    }
}

/// `deserialize_with` for optional enum fields of requests (strict, see [`WireEnum::parse_strict`]).
pub(crate) fn strict<'de, D: Deserializer<'de>, T: WireEnum>(d: D) -> Result<Option<T>, D::Error> {
    let v = Value::deserialize(d)?;
    T::parse_strict(&v).map_err(D::Error::custom)
}

/// Lenient decoding shared by every enum: a name (full `PREFIX_NAME` or short `name`, any case)
/// or its number; unknown values read as `fallback`.
fn lenient<'de, D, E>(
    d: D,
    from_name: fn(&str) -> Option<E>,
    from_number: fn(i64) -> Option<E>,
    fallback: E,
) -> Result<E, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => from_name(&s).unwrap_or(fallback),
        Some(Value::Number(n)) => n.as_i64().and_then(from_number).unwrap_or(fallback),
        Some(Value::Null) | None => fallback,
        Some(other) => return Err(D::Error::custom(format!("unexpected enum value {other}"))),
    })
}

/// Declares a protobuf enum with its wire names and numbers (`Unspecified` is number 0).
///
/// `schema: all` documents every name in the OpenAPI document; `schema: specified` leaves out
/// `…_UNSPECIFIED`, for enums the server never sends unset.
macro_rules! wire_enum {
    (@schema all, $names:ident) => { $names };
    (@schema specified, $names:ident) => { &$names[1..] };
    (
        $(#[$meta:meta])*
        $name:ident, $prefix:literal, schema: $schema:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $num:literal, $short:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            /// Not set (`…_UNSPECIFIED`).
            #[default]
            Unspecified,
            $( $(#[$vmeta])* $variant, )+
        }

        impl WireEnum for $name {
            const NAMES: &'static [&'static str] =
                &[concat!($prefix, "UNSPECIFIED"), $( concat!($prefix, $short) ),+];
            const VARIANTS: &'static [Self] = &[$name::Unspecified, $( $name::$variant ),+];
        }

        impl $name {
            /// All variants but `Unspecified`, in wire-number order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The full wire name, e.g. `KEY_STATUS_ACTIVE`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $name::Unspecified => concat!($prefix, "UNSPECIFIED"),
                    $( $name::$variant => concat!($prefix, $short), )+
                }
            }

            /// The short lower-case name, e.g. `active`.
            pub fn short_name(self) -> String {
                self.as_str()[$prefix.len()..].to_ascii_lowercase()
            }

            /// The protobuf enum number.
            pub const fn number(self) -> i32 {
                match self {
                    $name::Unspecified => 0,
                    $( $name::$variant => $num, )+
                }
            }

            /// Parses a full or short name, case-insensitively (`-` reads as `_`).
            pub fn from_name(s: &str) -> Option<Self> {
                let up = s.trim().to_ascii_uppercase().replace('-', "_");
                let short = up.strip_prefix($prefix).unwrap_or(&up);
                match short {
                    "UNSPECIFIED" => Some($name::Unspecified),
                    $( $short => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// Maps a protobuf enum number.
            pub fn from_number(n: i64) -> Option<Self> {
                match n {
                    0 => Some($name::Unspecified),
                    $( $num => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::from_name(s).ok_or_else(|| format!("unknown {} {s:?}", stringify!($name)))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                lenient(d, $name::from_name, $name::from_number, $name::Unspecified)
            }
        }

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let names = <$name as WireEnum>::NAMES;
                let names = wire_enum!(@schema $schema, names);
                schemars::json_schema!({ "type": "string", "enum": names })
            }
        }
    };
}

wire_enum! {
    /// Lifecycle state of a key. `EXPIRED` is computed by the server at read time.
    KeyStatus, "KEY_STATUS_", schema: all {
        /// The key verifies.
        Active = 1, "ACTIVE";
        /// Revoked by an admin, by rotation or by its holder.
        Revoked = 2, "REVOKED";
        /// Past its `expire_time`.
        Expired = 3, "EXPIRED";
    }
}

wire_enum! {
    /// Whether a key is secret (default) or public.
    KeyVisibility, "KEY_VISIBILITY_", schema: all {
        /// A secret key.
        Secret = 1, "SECRET";
        /// A publishable key.
        Public = 2, "PUBLIC";
    }
}

wire_enum! {
    /// Why a key was revoked.
    RevocationReason, "REVOCATION_REASON_", schema: all {
        /// The secret leaked.
        KeyCompromise = 1, "KEY_COMPROMISE";
        /// The holder's affiliation changed.
        AffiliationChanged = 2, "AFFILIATION_CHANGED";
        /// Replaced by another key (rotation uses this).
        Superseded = 3, "SUPERSEDED";
        /// Withdrawn by an admin; the only reason that takes a `reason_text`. Not allowed for self-revoke.
        PrivilegeWithdrawn = 4, "PRIVILEGE_WITHDRAWN";
    }
}

wire_enum! {
    /// Derived token kind.
    TokenAlgorithm, "TOKEN_ALGORITHM_", schema: all {
        /// EdDSA-signed JWT.
        Jwt = 1, "JWT";
        /// HMAC macaroon (`mc_v1_…`).
        Macaroon = 2, "MACAROON";
    }
}

wire_enum! {
    /// Why a verification failed.
    VerificationErrorCode, "VERIFICATION_ERROR_", schema: specified {
        /// Not a credential of any known shape.
        InvalidFormat = 1, "INVALID_FORMAT";
        /// Past its expiry.
        Expired = 2, "EXPIRED";
        /// Revoked.
        Revoked = 3, "REVOKED";
        /// Unknown key, bad checksum, or a token for another network.
        NotFound = 4, "NOT_FOUND";
        /// Derived token signature mismatch.
        SignatureInvalid = 5, "SIGNATURE_INVALID";
        /// Server-side failure (e.g. no HMAC secret configured).
        Internal = 6, "INTERNAL";
        /// Client IP outside the key's allowlist.
        IpNotAllowed = 7, "IP_NOT_ALLOWED";
        /// Rate limit exhausted.
        RateLimited = 8, "RATE_LIMITED";
        /// The actor has a balance quota and nothing left of it (metering).
        BalanceExhausted = 9, "BALANCE_EXHAUSTED";
        /// The key's credits cannot pay the verification's cost (metering).
        UsageExceeded = 10, "USAGE_EXCEEDED";
    }
}

wire_enum! {
    /// Per-item error of a batch import.
    BatchImportErrorCode, "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_", schema: specified {
        /// Validation failed.
        InvalidArgument = 1, "INVALID_ARGUMENT";
        /// Duplicate (already imported, or twice in the batch).
        AlreadyExists = 2, "ALREADY_EXISTS";
        /// Refused raw key shape (issued key, JWT, macaroon).
        FailedPrecondition = 3, "FAILED_PRECONDITION";
        /// Server-side failure.
        Internal = 4, "INTERNAL";
        /// Quota exhausted.
        ResourceExhausted = 5, "RESOURCE_EXHAUSTED";
    }
}

/// The `unit` values a rate-limit policy may name; the server only enforces `requests`.
pub const RATE_LIMIT_UNITS: &[&str] = &["requests", "content-bytes", "concurrent-requests"];

/// The unit the server reads back for every policy.
pub const RATE_LIMIT_UNIT_REQUESTS: &str = "requests";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_names_short_names_and_numbers() {
        assert_eq!(KeyStatus::from_name("active"), Some(KeyStatus::Active));
        assert_eq!(
            KeyStatus::from_name("KEY_STATUS_REVOKED"),
            Some(KeyStatus::Revoked)
        );
        assert_eq!(
            RevocationReason::from_name("key-compromise"),
            Some(RevocationReason::KeyCompromise)
        );
        let s: KeyStatus = serde_json::from_value(json!(3)).unwrap();
        assert_eq!(s, KeyStatus::Expired);
        let s: KeyStatus = serde_json::from_value(json!("KEY_STATUS_FROM_THE_FUTURE")).unwrap();
        assert_eq!(s, KeyStatus::Unspecified);
        assert_eq!(
            serde_json::to_value(TokenAlgorithm::Jwt).unwrap(),
            json!("TOKEN_ALGORITHM_JWT")
        );
        assert_eq!(
            RevocationReason::PrivilegeWithdrawn.short_name(),
            "privilege_withdrawn"
        );
    }

    #[test]
    fn strict_names_or_numbers_only() {
        let cases: &[(Value, Option<Option<KeyVisibility>>)] = &[
            (
                json!("KEY_VISIBILITY_PUBLIC"),
                Some(Some(KeyVisibility::Public)),
            ),
            (
                json!("key_visibility_public"),
                Some(Some(KeyVisibility::Public)),
            ),
            (json!(1), Some(Some(KeyVisibility::Secret))),
            (Value::Null, Some(None)),
            (json!("PUBLIC"), None),
            (json!(7), None),
            (json!(-1), None),
            (json!(true), None),
        ];
        for (v, want) in cases {
            assert_eq!(KeyVisibility::parse_strict(v).ok(), *want, "{v}");
        }
        let err = KeyVisibility::parse_strict(&json!("NOPE")).unwrap_err();
        assert_eq!(
            err,
            "unknown enum value \"NOPE\"; expected one of KEY_VISIBILITY_UNSPECIFIED, \
             KEY_VISIBILITY_SECRET, KEY_VISIBILITY_PUBLIC"
        );
    }

    #[test]
    fn tables_are_indexed_by_number() {
        fn check<T: WireEnum + PartialEq + std::fmt::Debug>(num: fn(T) -> i32) {
            for (i, v) in T::VARIANTS.iter().enumerate() {
                assert_eq!(num(*v) as usize, i, "{v:?}");
            }
            assert_eq!(T::NAMES.len(), T::VARIANTS.len());
        }
        check::<KeyStatus>(KeyStatus::number);
        check::<KeyVisibility>(KeyVisibility::number);
        check::<RevocationReason>(RevocationReason::number);
        check::<TokenAlgorithm>(TokenAlgorithm::number);
        check::<VerificationErrorCode>(VerificationErrorCode::number);
        check::<BatchImportErrorCode>(BatchImportErrorCode::number);
        for v in VerificationErrorCode::ALL {
            assert_eq!(
                VerificationErrorCode::NAMES[v.number() as usize],
                v.as_str()
            );
        }
    }
}
