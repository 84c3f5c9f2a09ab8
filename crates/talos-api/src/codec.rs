//! Field codecs of the protojson conventions: int64 as strings (read as number or string), RFC 3339
//! times, `null` as the zero value.
//!
//! Decoding helpers come in two kinds. Lenient ones (`de_lenient_*`, responses) prefer a zero value
//! over an error: a client that refuses a whole response because one field is odd is worse than
//! one that shows the rest. Strict ones (`de_strict_*`, requests) reject what the server cannot
//! interpret, with a message naming what was expected.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// `null` or absent → `T::default()`; any other type mismatch is still an error.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A list whose items may be `null` (read as `T::default()`); the list itself may be `null`.
pub(crate) fn null_items<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<Vec<Option<T>>>::deserialize(d)?
        .map(|items| items.into_iter().map(Option::unwrap_or_default).collect()))
}

fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// int64 as a JSON number or a decimal string; anything else → 0.
pub(crate) fn de_lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_i64)
        .unwrap_or(0))
}

/// Optional int64, number or string; anything else → absent.
pub(crate) fn de_lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_i64))
}

/// int64 as a JSON number or a decimal string; anything else is an error.
pub(crate) fn de_strict_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom("expected a 64-bit integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected an integer, got {s:?}"))),
        other => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// int64 written the protojson way: as a decimal string.
pub(crate) fn ser_i64_str<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Optional int64 as a decimal string (callers skip `None`).
pub(crate) fn ser_opt_i64_str<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// A time as the server writes it: RFC 3339 in UTC with microseconds and `Z`
/// (`2026-01-02T03:04:05.000000Z`), the form of `to_rfc3339_opts(SecondsFormat::Micros, true)`.
pub struct Rfc3339Micros(pub DateTime<Utc>);

impl fmt::Display for Rfc3339Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        let year = t.year();
        if !(0..=9999).contains(&year) {
            // Outside four-digit years chrono's own writer decides the form; never on the hot path.
            return f.write_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true));
        }
        // Written field by field so that serializing a time allocates nothing (verify answers
        // carry one or two). A leap second is second 60 with the excess nanoseconds.
        let nanos = t.nanosecond();
        write!(
            f,
            "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second() + u32::from(nanos >= 1_000_000_000),
            nanos % 1_000_000_000 / 1_000,
        )?;
        f.write_char('Z')
    }
}

/// Optional time (callers skip `None`).
pub(crate) fn ser_opt_time<S: Serializer>(
    v: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(t) => s.collect_str(&Rfc3339Micros(*t)),
        None => s.serialize_none(),
    }
}

/// Optional RFC 3339 time; an unparsable value reads as absent rather than failing the response.
pub(crate) fn de_lenient_opt_time<'de, D: Deserializer<'de>>(
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
pub(crate) fn de_lenient_opt_string<'de, D: Deserializer<'de>, T: From<String>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(T::from(s)),
        _ => None,
    })
}

/// A JSON object; `null` or a non-object reads as `{}`.
pub(crate) fn de_lenient_object<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Map<String, Value>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    })
}

/// `Option<Option<T>>` for a field where absent, `null` and a value mean three things (absent:
/// keep; `null`: clear; value: set). Use with `#[serde(default)]`.
pub(crate) fn de_present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Writes a present-or-absent field written by [`de_present`] (callers skip the outer `None`).
pub(crate) fn ser_present<S: Serializer, T: Serialize>(
    v: &Option<Option<T>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(inner) => inner.serialize(s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_match_chronos_rfc3339_micros() {
        let samples = [
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(1_767_225_600, 123_456_789).unwrap(),
            Utc.timestamp_opt(-62_135_596_800, 1_000).unwrap(), // year 1
            Utc.timestamp_opt(253_402_300_799, 999_999_999).unwrap(), // 9999-12-31
            Utc.timestamp_opt(253_402_300_800, 0).unwrap(),     // year 10000
            Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap(), // a leap second
        ];
        for t in samples {
            assert_eq!(
                Rfc3339Micros(t).to_string(),
                t.to_rfc3339_opts(SecondsFormat::Micros, true),
                "{t:?}"
            );
        }
    }

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "de_lenient_i64")]
        n: i64,
        #[serde(default, deserialize_with = "de_lenient_opt_time")]
        t: Option<DateTime<Utc>>,
        #[serde(default, deserialize_with = "null_default")]
        v: Vec<String>,
        #[serde(default, deserialize_with = "de_strict_opt_i64")]
        q: Option<i64>,
    }

    #[test]
    fn int64_as_number_or_string() {
        for (json, want) in [
            (r#"{"n":5}"#, 5),
            (r#"{"n":"42"}"#, 42),
            (r#"{"n":null}"#, 0),
            (r#"{"n":"x"}"#, 0),
            ("{}", 0),
        ] {
            let p: Probe = serde_json::from_str(json).unwrap();
            assert_eq!(p.n, want, "{json}");
        }
        let p: Probe = serde_json::from_str(r#"{"q":" 7 "}"#).unwrap();
        assert_eq!(p.q, Some(7));
        for bad in [r#"{"q":"x"}"#, r#"{"q":1.5}"#, r#"{"q":true}"#] {
            assert!(serde_json::from_str::<Probe>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lenient_times_and_nulls() {
        let p: Probe = serde_json::from_str(r#"{"t":"2026-01-02T03:04:05Z","v":null}"#).unwrap();
        assert_eq!(p.t.unwrap().to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert!(p.v.is_empty());
        let p: Probe = serde_json::from_str(r#"{"t":"yesterday"}"#).unwrap();
        assert!(p.t.is_none());
        assert!(serde_json::from_str::<Probe>(r#"{"v":"a"}"#).is_err());
    }
}
