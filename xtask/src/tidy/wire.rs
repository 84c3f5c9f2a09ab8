//! Wire strings live in `crates/talos-api` only: the enum names of the wire format (`KEY_STATUS_*`,
//! `VERIFICATION_ERROR_*`, `KEY_VISIBILITY_*`), the AIP-193 reasons of the error envelope and the
//! header names Talos defines (`X-Talos-*`, `Ory-Talos-Cache`, `X-API-Key`, any case).
//! Elsewhere code names them through talos-api, so one crate owns the spelling. Tests,
//! documentation and harnesses (xtask, conformance) are exempt: they check the wire format from
//! outside, and a test that spelled it through talos-api could not catch a rename.

use super::lex::string_literals;
use super::{Source, Violation, missing_entries};

/// The crate the wire format lives in.
pub const HOME: &str = "crates/talos-api/";

/// Prefixes of the wire format's enum names.
const PREFIXES: &[&str] = &["KEY_STATUS_", "VERIFICATION_ERROR_", "KEY_VISIBILITY_"];

/// The AIP-193 reasons (`error.details[].reason`) the server answers with.
const REASONS: &[&str] = &[
    "API_KEY_EXISTS",
    "API_KEY_EXPIRED",
    "API_KEY_NOT_FOUND",
    "API_KEY_QUOTA_EXCEEDED",
    "API_KEY_REVOKED",
    "BAD_REQUEST",
    "CANCELLED",
    "CONFLICT",
    "CREDENTIAL_REQUIRED",
    "DEADLINE_EXCEEDED",
    "DERIVED_TOKEN_NOT_REVOCABLE",
    "FAILED_PRECONDITION",
    "FORBIDDEN",
    "HOST_NOT_ALLOWED",
    "INVALID_TOKEN_TYPE",
    "METHOD_NOT_ALLOWED",
    "ORIGIN_NOT_ALLOWED",
    "OVERLOADED",
    "PARENT_KEY_INVALID",
    "PAYLOAD_TOO_LARGE",
    "PERMISSION_DENIED",
    "REQUEST_TIMEOUT",
    "SERVICE_UNAVAILABLE",
    "UNAUTHENTICATED",
];

/// Header names Talos defines, lower case: these, and any name starting with [`HEADER_PREFIX`].
const HEADERS: &[&str] = &["ory-talos-cache", "x-api-key"];

/// The prefix of gateway verify's headers (`X-Talos-Key-Id`, `X-Talos-Required-Scopes`, …).
const HEADER_PREFIX: &str = "x-talos-";

/// Files that still spell wire strings until talos-api owns them (issue 13). Remove each entry as
/// its file moves to talos-api; an entry whose file holds none (or is gone) is itself reported.
const PENDING: &[&str] = &[];

/// Whether a literal is a wire string.
pub fn is_wire(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    PREFIXES.iter().any(|p| value.starts_with(p))
        || REASONS.contains(&value)
        || lower.starts_with(HEADER_PREFIX)
        || HEADERS.contains(&lower.as_str())
}

/// Files the rule does not apply to: talos-api itself, tests, and anything outside the crates
/// and binaries (xtask is a black-box harness).
fn exempt(rel: &str) -> bool {
    rel.starts_with(HOME)
        || !(rel.starts_with("crates/") || rel.starts_with("bins/"))
        || rel.contains("/tests/")
        || rel.ends_with("/tests.rs")
}

pub fn check(files: &[Source]) -> Vec<Violation> {
    check_with(files, PENDING)
}

fn check_with(files: &[Source], pending: &[&str]) -> Vec<Violation> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| !exempt(&f.rel)) {
        let found: Vec<_> = string_literals(&f.text)
            .into_iter()
            .filter(|l| is_wire(&l.value))
            .collect();
        let excused = pending.contains(&f.rel.as_str());
        if excused && found.is_empty() {
            out.push(Violation::new(
                &f.rel,
                1,
                "holds no wire strings now: remove it from PENDING in xtask/src/tidy/wire.rs",
            ));
        }
        if excused {
            continue;
        }
        for l in found {
            out.push(Violation::new(
                &f.rel,
                l.line,
                format!(
                    "wire string \"{}\" outside {HOME}: name it through talos-api, which owns \
                     the wire format",
                    l.value
                ),
            ));
        }
    }
    out.extend(missing_entries(
        files,
        pending.iter().copied(),
        "wire",
        "PENDING",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_a_wire_string() {
        let cases = [
            ("KEY_STATUS_ACTIVE", true),
            ("KEY_STATUS_", true),
            ("VERIFICATION_ERROR_NOT_FOUND", true),
            ("KEY_VISIBILITY_SECRET", true),
            ("API_KEY_NOT_FOUND", true),
            ("OVERLOADED", true),
            ("status is KEY_STATUS_ACTIVE", false),
            ("API_KEY_NOT_FOUND_X", false),
            ("overloaded", false),
            ("TALOS_DB_DSN", false),
            ("X-Talos-Key-Id", true),
            ("x-talos-required-scopes", true),
            ("Ory-Talos-Cache", true),
            ("X-API-Key", true),
            ("X-Request-ID", false),
        ];
        for (value, want) in cases {
            assert_eq!(is_wire(value), want, "{value}");
        }
    }

    #[test]
    fn which_files_are_exempt() {
        let cases = [
            ("crates/talos-api/src/lib.rs", true),
            ("crates/talos-http/tests/api.rs", true),
            ("bins/talos/src/batch_input/tests.rs", true),
            ("xtask/src/chaos/client.rs", true),
            ("crates/talos-http/src/wire.rs", false),
            ("crates/talos-core/examples/embedded_verify.rs", false),
            ("bins/talos/src/output.rs", false),
        ];
        for (rel, want) in cases {
            assert_eq!(exempt(rel), want, "{rel}");
        }
    }

    #[test]
    fn reports_wire_strings_with_their_lines() {
        let files = [
            Source::new(
                "crates/talos-core/src/a.rs",
                "//! a\nfn f() {}\nconst S: &str = \"KEY_STATUS_ACTIVE\";\n// \"OVERLOADED\"\n",
            ),
            Source::new(
                "crates/talos-api/src/lib.rs",
                "const S: &str = \"OVERLOADED\";",
            ),
            Source::new(
                "crates/talos-core/src/b.rs",
                "#[cfg(test)]\nmod tests { const S: &str = \"OVERLOADED\"; }",
            ),
            Source::new("crates/talos-core/src/c.rs", "\"API_KEY_REVOKED\""),
            Source::new("crates/talos-core/src/d.rs", "\"fine\""),
        ];
        let pending = ["crates/talos-core/src/c.rs", "crates/talos-core/src/d.rs"];
        let got: Vec<String> = check_with(&files, &pending)
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with(
            "crates/talos-core/src/a.rs:3: wire string \"KEY_STATUS_ACTIVE\" outside crates/talos-api/"
        ));
        assert!(got[1].starts_with("crates/talos-core/src/d.rs:1: holds no wire strings now"));
    }
}
