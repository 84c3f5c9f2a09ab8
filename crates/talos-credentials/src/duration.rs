//! The TTL duration grammar: Go durations, protobuf seconds and the extended units `y`, `mo`, `w`, `d`.
//!
//! A duration is one or more `<number><unit>` terms (`1y6mo`, `1h30m`, `1.5h`, `86400s`), with an optional leading
//! `+`. Numbers are decimal with an optional fraction. Units, matched longest first: `mo` (30 days), `ms`, `us`,
//! `µs`/`μs`, `ns`, `y` (365 days), `w`, `d`, `h`, `m`, `s`. The total must be positive and at most
//! `i64::MAX` nanoseconds (about 292 years). Whitespace, signs other than a leading `+`, bare numbers (including
//! `0`) and unknown units are rejected.

use std::time::Duration;

use crate::CredentialsError;

/// The error of [`parse_duration`] (always [`CredentialsError::InvalidDuration`]).
pub type DurationError = CredentialsError;

/// The accepted forms, as listed in error messages.
pub const ACCEPTED_FORMS: &str = "720h, 1h30m, 86400s, 1d, 1w, 1mo, 1y or 1y6mo";

const NS: u128 = 1_000_000_000;
const DAY: u128 = 86_400 * NS;

/// Units in match order: every unit comes before any unit that is a prefix of it.
const UNITS: &[(&str, u128)] = &[
    ("mo", 30 * DAY),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ns", 1),
    ("y", 365 * DAY),
    ("w", 7 * DAY),
    ("d", DAY),
    ("h", 3_600 * NS),
    ("m", 60 * NS),
    ("s", NS),
];

const MAX_NS: u128 = i64::MAX as u128;
/// Fraction digits beyond this are ignored (below a nanosecond even for years).
const MAX_FRACTION_DIGITS: usize = 18;

fn invalid(input: &str) -> CredentialsError {
    let mut shown: String = input.chars().take(64).collect();
    if shown.len() < input.len() {
        shown.push('…');
    }
    CredentialsError::InvalidDuration { input: shown }
}

/// Parses a TTL such as `720h`, `1h30m`, `1.5h`, `86400s`, `1.5s`, `1d`, `2w`, `1mo`, `1y6mo`.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return Err(invalid(s));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_num) = match after_int.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid(s));
        }
        let (unit_len, unit_ns) = UNITS
            .iter()
            .find(|(name, _)| after_num.starts_with(name))
            .map(|(name, ns)| (name.len(), *ns))
            .ok_or_else(|| invalid(s))?;
        rest = &after_num[unit_len..];

        let mut int_value: u128 = 0;
        for d in int_part.bytes() {
            int_value = int_value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(d - b'0')))
                .filter(|v| *v <= MAX_NS)
                .ok_or_else(|| invalid(s))?;
        }
        let mut term = int_value.checked_mul(unit_ns).ok_or_else(|| invalid(s))?;
        let frac_digits = &frac_part[..frac_part.len().min(MAX_FRACTION_DIGITS)];
        if !frac_digits.is_empty() {
            let mut frac: u128 = 0;
            let mut scale: u128 = 1;
            for d in frac_digits.bytes() {
                frac = frac * 10 + u128::from(d - b'0');
                scale *= 10;
            }
            // frac < 10^18 and unit_ns < 10^17: no overflow in u128.
            term += frac * unit_ns / scale;
        }
        total = total
            .checked_add(term)
            .filter(|t| *t <= MAX_NS)
            .ok_or_else(|| invalid(s))?;
    }
    if total == 0 {
        return Err(invalid(s));
    }
    // total <= i64::MAX, so it fits in u64.
    Ok(Duration::from_nanos(total as u64))
}

/// Formats a duration in the protobuf JSON form: `"60s"`, or with 3, 6 or 9 fraction digits (`"1.500s"`).
pub fn format_seconds(d: Duration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{secs}s")
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{secs}.{:03}s", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{secs}.{:06}s", nanos / 1_000)
    } else {
        format!("{secs}.{nanos:09}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600;
    const D: u64 = 86_400;

    #[test]
    fn accepted() {
        let table: &[(&str, Duration)] = &[
            ("720h", Duration::from_secs(720 * H)),
            ("1h30m", Duration::from_secs(H + 30 * 60)),
            ("1.5h", Duration::from_secs(H + 30 * 60)),
            ("86400s", Duration::from_secs(D)),
            ("1.5s", Duration::from_millis(1_500)),
            ("1d", Duration::from_secs(D)),
            ("1w", Duration::from_secs(7 * D)),
            ("2w3d", Duration::from_secs(17 * D)),
            ("1mo", Duration::from_secs(30 * D)),
            ("1y", Duration::from_secs(365 * D)),
            ("1y6mo", Duration::from_secs(365 * D + 180 * D)),
            ("10m", Duration::from_secs(600)),
            ("1m30s", Duration::from_secs(90)),
            ("1ms", Duration::from_millis(1)),
            ("1500ms", Duration::from_millis(1_500)),
            ("1us", Duration::from_micros(1)),
            ("1\u{b5}s", Duration::from_micros(1)),
            ("1\u{3bc}s", Duration::from_micros(1)),
            ("1ns", Duration::from_nanos(1)),
            ("1h1m1s1ms1us1ns", Duration::from_nanos(3_661_001_001_001)),
            (".5h", Duration::from_secs(30 * 60)),
            ("1.h", Duration::from_secs(H)),
            ("+5m", Duration::from_secs(300)),
            ("0h1s", Duration::from_secs(1)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("0.0000000019s", Duration::from_nanos(1)),
            ("30m1h", Duration::from_secs(H + 30 * 60)),
            ("1.5d", Duration::from_secs(D + D / 2)),
            ("1.5mo", Duration::from_secs(45 * D)),
            ("292y", Duration::from_secs(292 * 365 * D)),
            (
                "9223372036854775807ns",
                Duration::from_nanos(i64::MAX as u64),
            ),
            ("00001s", Duration::from_secs(1)),
        ];
        for (input, want) in table {
            assert_eq!(parse_duration(input).as_ref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejected() {
        for input in [
            "",
            " ",
            "   ",
            "0",
            "0s",
            "0h0m",
            "0.0s",
            "-1h",
            "-0s",
            "+",
            "+-1h",
            "1",
            "720",
            "abc",
            "h",
            "1x",
            "1h ",
            " 1h",
            "1 h",
            "1h-30m",
            ".h",
            "1..5h",
            "1.5.5h",
            "1e3s",
            "1hh",
            "1M",
            "1H",
            "1Y",
            "1mon",
            "1hour",
            "0x10s",
            "\u{0}",
            "1h\n",
            "293y",
            "9223372036854775808ns",
            "99999999999999999999999999999999999999999999h",
            "9223372036854775807s",
            "1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y1y300y",
            "NaN",
            "inf",
            "1.5",
        ] {
            let err = parse_duration(input).unwrap_err();
            assert!(
                matches!(err, CredentialsError::InvalidDuration { .. }),
                "{input}"
            );
        }
    }

    #[test]
    fn error_message_lists_forms() {
        let err = parse_duration("abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid duration \"abc\": use a positive duration such as 720h, 1h30m, 86400s, 1d, 1w, 1mo, 1y or 1y6mo"
        );
        assert!(err.to_string().contains(ACCEPTED_FORMS));
        let long = "x".repeat(1_000);
        let msg = parse_duration(&long).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn format() {
        let table: &[(Duration, &str)] = &[
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(0), "0s"),
            (Duration::from_secs(86_400), "86400s"),
            (Duration::from_millis(1_500), "1.500s"),
            (Duration::from_micros(1_000_001), "1.000001s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
            (Duration::from_nanos(5), "0.000000005s"),
        ];
        for (d, want) in table {
            assert_eq!(format_seconds(*d), *want);
        }
        // Every formatted duration parses back.
        for (d, s) in table.iter().skip(2) {
            assert_eq!(parse_duration(s).unwrap(), *d);
        }
    }
}
