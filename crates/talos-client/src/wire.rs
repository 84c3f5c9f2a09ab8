//! Lenient decoding helpers for the protojson wire format.
//!
//! The server follows protojson conventions (int64 as strings, enums by name, RFC 3339 times), while older or
//! upstream servers emit `null` for unset messages and may send numbers where we expect strings. A CLI that
//! refuses a whole response because one field is odd is worse than one that shows the rest, so every helper here
//! prefers a zero value over an error. The raw document is always kept next to the typed view for exactness.

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serializer};
use serde_json::Value;

/// `null` or absent → `T::default()`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// int64 sent as a JSON number or a decimal string (protojson); anything else → 0.
pub(crate) fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_to_i64)
        .unwrap_or(0))
}

/// Optional int64, number or string.
pub(crate) fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_to_i64))
}

/// int64 written the protojson way: as a decimal string.
pub(crate) fn ser_i64_str<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Optional RFC 3339 time; an unparsable value reads as absent rather than failing the whole response.
pub(crate) fn de_opt_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(&s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    })
}

/// Optional string; `null` and non-strings read as absent.
pub(crate) fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        _ => None,
    })
}

/// A JSON object; `null` or a non-object reads as `{}` (the server always sends an object for `metadata`).
pub(crate) fn de_object<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Map<String, Value>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    })
}

/// Shared decoding for wire enums: a name (full `PREFIX_NAME` or short `name`, any case) or its number.
pub(crate) fn enum_from_value<'de, D, E>(
    d: D,
    from_str: fn(&str) -> Option<E>,
    from_num: fn(i64) -> Option<E>,
    fallback: E,
) -> Result<E, D::Error>
where
    D: Deserializer<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::String(s)) => from_str(&s).unwrap_or(fallback),
        Some(Value::Number(n)) => n.as_i64().and_then(from_num).unwrap_or(fallback),
        Some(Value::Null) | None => fallback,
        Some(other) => return Err(de::Error::custom(format!("unexpected enum value {other}"))),
    })
}

/// Declares a protobuf enum with its wire names and numbers.
///
/// Serializes by full name (`KEY_STATUS_ACTIVE`); parses full names, short names (`active`, any case) and
/// numbers; unknown values decode to the `UNSPECIFIED` variant so a newer server never breaks an older client.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $prefix:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $num:literal, $short:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            #[default]
            /// Not set (`…_UNSPECIFIED`).
            Unspecified,
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// All variants but `Unspecified`, in wire-number order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The full wire name, e.g. `KEY_STATUS_ACTIVE`.
            pub fn as_str(self) -> &'static str {
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
            pub fn number(self) -> i32 {
                match self {
                    $name::Unspecified => 0,
                    $( $name::$variant => $num, )+
                }
            }

            /// Parses a full or short name, case-insensitively.
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
                $crate::wire::enum_from_value(d, $name::from_name, $name::from_number, $name::Unspecified)
            }
        }
    };
}

pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "de_i64")]
        n: i64,
        #[serde(default, deserialize_with = "de_opt_time")]
        t: Option<DateTime<Utc>>,
        #[serde(default, deserialize_with = "null_default")]
        v: Vec<String>,
    }

    #[test]
    fn int64_as_number_or_string() {
        for (json, want) in [
            (r#"{"n":5}"#, 5),
            (r#"{"n":"42"}"#, 42),
            (r#"{"n":null}"#, 0),
            ("{}", 0),
        ] {
            let p: Probe = serde_json::from_str(json).unwrap();
            assert_eq!(p.n, want, "{json}");
        }
    }

    #[test]
    fn lenient_times_and_nulls() {
        let p: Probe = serde_json::from_str(r#"{"t":"2026-01-02T03:04:05Z","v":null}"#).unwrap();
        assert_eq!(p.t.unwrap().to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert!(p.v.is_empty());
        let p: Probe = serde_json::from_str(r#"{"t":"yesterday"}"#).unwrap();
        assert!(p.t.is_none());
    }
}
