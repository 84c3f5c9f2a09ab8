//! Scalar config types with their own text forms.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as text: Go (`720h`, `1h30m`), protobuf seconds (`86400s`) or the
/// extended units `y`, `mo`, `w`, `d` — the same grammar as the HTTP `ttl` fields.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub const fn secs(s: u64) -> Self {
        ConfigDuration(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        ConfigDuration(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Debug for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&talos_credentials::duration::format_seconds(self.0))
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        talos_credentials::duration::parse_duration(&text)
            .map(ConfigDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// A size in bytes: a number, or text such as `100MiB`, `64MB`, `512KiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size {text:?}: use e.g. 100MiB"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "kib" | "k" => 1 << 10,
            "mb" => 1_000_000,
            "mib" | "m" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" | "g" => 1 << 30,
            _ => {
                return Err(format!(
                    "invalid size unit in {text:?}: use B, KiB, MiB, GiB, KB, MB or GB"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {text:?} is too large"))
    }
}

/// Written back as text (`100MiB`, `512KiB`, `12`), so that its `TALOS_*` variable takes the
/// same forms as the file.
impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
            s.collect_str(&format_args!("{}GiB", n >> 30))
        } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            s.collect_str(&format_args!("{}MiB", n >> 20))
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            s.collect_str(&format_args!("{}KiB", n >> 10))
        } else {
            s.collect_str(&n)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        for (text, want) in [
            ("100MiB", Some(100 << 20)),
            ("64MB", Some(64_000_000)),
            ("12", Some(12)),
            ("1x", None),
            ("", None),
        ] {
            assert_eq!(ByteSize::parse(text).ok().map(|b| b.0), want, "{text}");
        }
        for (n, text) in [
            (100 << 20, "\"100MiB\""),
            (3 << 30, "\"3GiB\""),
            (1000, "\"1000\""),
        ] {
            let shown = serde_json::to_string(&ByteSize(n)).unwrap();
            assert_eq!(shown, text);
            assert_eq!(serde_json::from_str::<ByteSize>(&shown).unwrap().0, n);
        }
    }
}
