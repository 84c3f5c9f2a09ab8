//! Upstream's domain metrics (reference.md §13), with the same names, labels and types, so that
//! upstream's dashboards work against Talos; plus our own `talos_verify_total{result}`.
//!
//! Every handle is registered once, on first use, and kept: the verify path increments counters
//! it already holds instead of looking a labelled series up in the registry per request (2–5% of
//! the server's CPU, docs/benchmarks.md). The binary installs the Prometheus recorder before it
//! builds the service, so the first use finds it; without a recorder (tests, the embedded
//! library) the handles do nothing.

use std::sync::LazyLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::service::{CacheStatus, VerifyErrorCode};
use talos_storage::RevocationReason;

/// What a verification was asked to check: the `type` label of `talos_verifications_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifyKind {
    /// An issued key (`<prefix>_v1_…`).
    Issued,
    /// Any other raw key: looked up as an imported key.
    Imported,
    /// A derived JWT.
    Jwt,
    /// A derived macaroon.
    Macaroon,
    /// Refused before its kind mattered (empty, too long, no HMAC secret configured).
    Unknown,
}

impl VerifyKind {
    const ALL: [VerifyKind; 5] = [
        VerifyKind::Issued,
        VerifyKind::Imported,
        VerifyKind::Jwt,
        VerifyKind::Macaroon,
        VerifyKind::Unknown,
    ];

    fn label(self) -> &'static str {
        match self {
            VerifyKind::Issued => "issued",
            VerifyKind::Imported => "imported",
            VerifyKind::Jwt => "jwt",
            VerifyKind::Macaroon => "macaroon",
            VerifyKind::Unknown => "unknown",
        }
    }
}

/// Every verification error code, in the order of [`verify_results`](Domain::verify_results)
/// after `valid`.
const CODES: [VerifyErrorCode; 9] = [
    VerifyErrorCode::InvalidFormat,
    VerifyErrorCode::Expired,
    VerifyErrorCode::Revoked,
    VerifyErrorCode::NotFound,
    VerifyErrorCode::SignatureInvalid,
    VerifyErrorCode::NoHmacKey,
    VerifyErrorCode::Internal,
    VerifyErrorCode::IpNotAllowed,
    VerifyErrorCode::RateLimited,
];

const REASONS: [RevocationReason; 5] = [
    RevocationReason::Unspecified,
    RevocationReason::KeyCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::PrivilegeWithdrawn,
];

fn reason_label(r: RevocationReason) -> &'static str {
    match r {
        RevocationReason::Unspecified => "unspecified",
        RevocationReason::KeyCompromise => "key_compromise",
        RevocationReason::AffiliationChanged => "affiliation_changed",
        RevocationReason::Superseded => "superseded",
        RevocationReason::PrivilegeWithdrawn => "privilege_withdrawn",
    }
}

/// A failed cache operation: the `operation` label of `talos_cache_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheOp {
    /// Reading an entry (verification then reads the database).
    Read,
    /// Taking the ticket a fill needs.
    Ticket,
    /// Filling an entry after a database read.
    Write,
    /// Evicting an entry after a mutation.
    Evict,
}

impl CacheOp {
    const ALL: [CacheOp; 4] = [
        CacheOp::Read,
        CacheOp::Ticket,
        CacheOp::Write,
        CacheOp::Evict,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            CacheOp::Read => "read",
            CacheOp::Ticket => "ticket",
            CacheOp::Write => "write",
            CacheOp::Evict => "evict",
        }
    }
}

/// The handles, registered once.
pub(crate) struct Domain {
    /// `talos_verifications_total{type,result}`: per kind, `[success, failure]`.
    verifications: [[Counter; 2]; 5],
    /// `talos_verification_duration_seconds{type,cache_hit}`: per kind, `[hit, miss]`.
    verification_duration: [[Histogram; 2]; 5],
    /// Ours: `talos_verify_total{result}`, `valid` then one per [`CODES`] entry.
    verify_results: [Counter; 10],
    cache_hits: Counter,
    cache_misses: Counter,
    cache_errors: [Counter; 4],
    keys_created: Counter,
    keys_revoked: [Counter; 5],
    keys_rotated: Counter,
    tokens_minted: Counter,
    keyservice_load: [Counter; 2],
    keyservice_load_duration: Histogram,
    keyservice_keys_loaded: Gauge,
}

static DOMAIN: LazyLock<Domain> = LazyLock::new(Domain::register);

/// The process's domain metrics.
pub(crate) fn domain() -> &'static Domain {
    &DOMAIN
}

impl Domain {
    fn register() -> Domain {
        let verifications = VerifyKind::ALL.map(|k| {
            ["success", "failure"]
                .map(|r| counter!("talos_verifications_total", "type" => k.label(), "result" => r))
        });
        let verification_duration = VerifyKind::ALL.map(|k| {
            ["hit", "miss"].map(|h| {
                histogram!("talos_verification_duration_seconds", "type" => k.label(), "cache_hit" => h)
            })
        });
        let verify_results = std::array::from_fn(|i| {
            let result = match i {
                0 => "valid",
                _ => CODES[i - 1].label(),
            };
            counter!("talos_verify_total", "result" => result)
        });
        Domain {
            verifications,
            verification_duration,
            verify_results,
            cache_hits: counter!("talos_cache_hits_total"),
            cache_misses: counter!("talos_cache_misses_total"),
            cache_errors: CacheOp::ALL
                .map(|op| counter!("talos_cache_errors_total", "operation" => op.label())),
            keys_created: counter!("talos_keys_created_total"),
            keys_revoked: REASONS
                .map(|r| counter!("talos_keys_revoked_total", "reason" => reason_label(r))),
            keys_rotated: counter!("talos_keys_rotated_total"),
            tokens_minted: counter!("talos_tokens_minted_total"),
            keyservice_load: ["success", "failure"]
                .map(|r| counter!("talos_keyservice_load_total", "result" => r)),
            keyservice_load_duration: histogram!("talos_keyservice_load_duration_seconds"),
            keyservice_keys_loaded: gauge!("talos_keyservice_keys_loaded"),
        }
    }

    /// One answered verification: its kind, verdict, cache use and duration.
    pub(crate) fn verification(
        &self,
        kind: VerifyKind,
        failure: Option<VerifyErrorCode>,
        cache: CacheStatus,
        elapsed: Duration,
    ) {
        let k = kind as usize;
        self.verifications[k][usize::from(failure.is_some())].increment(1);
        let result = match failure {
            None => 0,
            Some(code) => 1 + CODES.iter().position(|c| *c == code).unwrap_or(0),
        };
        self.verify_results[result].increment(1);
        match cache {
            CacheStatus::Hit => self.cache_hits.increment(1),
            CacheStatus::Miss => self.cache_misses.increment(1),
            // Not looked up (cache off or bypassed, a derived token, refused before the lookup).
            CacheStatus::Skip => {}
        }
        let hit = usize::from(cache != CacheStatus::Hit);
        self.verification_duration[k][hit].record(elapsed.as_secs_f64());
    }

    pub(crate) fn cache_error(&self, op: CacheOp) {
        self.cache_errors[op as usize].increment(1);
    }

    /// A key was created: issued, imported, or one item of a batch import.
    pub(crate) fn key_created(&self, n: u64) {
        self.keys_created.increment(n);
    }

    pub(crate) fn key_revoked(&self, reason: RevocationReason) {
        let i = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        self.keys_revoked[i].increment(1);
    }

    pub(crate) fn key_rotated(&self) {
        self.keys_rotated.increment(1);
    }

    pub(crate) fn token_minted(&self) {
        self.tokens_minted.increment(1);
    }

    /// A load of the JWT signing keys (startup, reload): its outcome, duration and, on success,
    /// how many keys it loaded.
    pub(crate) fn keyservice_load(&self, loaded: Option<usize>, elapsed: Duration) {
        self.keyservice_load[usize::from(loaded.is_none())].increment(1);
        self.keyservice_load_duration.record(elapsed.as_secs_f64());
        if let Some(n) = loaded {
            self.keyservice_keys_loaded.set(n as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    /// Every series upstream's dashboards query exists with upstream's name, labels and type.
    #[test]
    fn names_labels_and_types_are_upstreams() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let d = Domain::register();
            d.verification(
                VerifyKind::Issued,
                None,
                CacheStatus::Hit,
                Duration::from_millis(1),
            );
            d.verification(
                VerifyKind::Jwt,
                Some(VerifyErrorCode::Expired),
                CacheStatus::Skip,
                Duration::from_millis(1),
            );
            d.key_revoked(RevocationReason::KeyCompromise);
            d.cache_error(CacheOp::Evict);
            d.keyservice_load(Some(2), Duration::from_millis(3));
        });
        let snap = snapshotter.snapshot().into_vec();
        let find = |name: &str, labels: &[(&str, &str)]| {
            snap.iter()
                .find(|(k, _, _, _)| {
                    let key = k.key();
                    key.name() == name
                        && labels
                            .iter()
                            .all(|(l, v)| key.labels().any(|x| x.key() == *l && x.value() == *v))
                })
                .map(|(_, _, _, v)| v)
        };
        let count = |name: &str, labels: &[(&str, &str)]| match find(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name} {labels:?}: {other:?}"),
        };
        assert_eq!(
            count(
                "talos_verifications_total",
                &[("type", "issued"), ("result", "success")]
            ),
            1
        );
        assert_eq!(
            count(
                "talos_verifications_total",
                &[("type", "jwt"), ("result", "failure")]
            ),
            1
        );
        assert_eq!(count("talos_verify_total", &[("result", "expired")]), 1);
        assert_eq!(count("talos_cache_hits_total", &[]), 1);
        assert_eq!(
            count("talos_cache_misses_total", &[]),
            0,
            "a skipped lookup is no miss"
        );
        assert_eq!(
            count("talos_keys_revoked_total", &[("reason", "key_compromise")]),
            1
        );
        assert_eq!(
            count("talos_cache_errors_total", &[("operation", "evict")]),
            1
        );
        assert_eq!(
            count("talos_keyservice_load_total", &[("result", "success")]),
            1
        );
        assert!(matches!(
            find(
                "talos_verification_duration_seconds",
                &[("type", "jwt"), ("cache_hit", "miss")]
            ),
            Some(DebugValue::Histogram(v)) if v.len() == 1
        ));
        assert!(matches!(
            find("talos_keyservice_keys_loaded", &[]),
            Some(DebugValue::Gauge(g)) if g.into_inner() == 2.0
        ));
        for name in [
            "talos_keys_created_total",
            "talos_keys_rotated_total",
            "talos_tokens_minted_total",
            "talos_keyservice_load_duration_seconds",
        ] {
            assert!(find(name, &[]).is_some(), "{name} is registered");
        }
    }
}
