//! The limit on failed gateway verifications per client address
//! (`serve.http.gateway.failure_limit`). `/gateway/verify` is on the public plane, so without it
//! anyone could test guesses of a weak imported key as fast as the server answers. Once an
//! address has used its budget, the gateway answers 429 without verifying anything, so a right
//! guess is indistinguishable from a wrong one until the budget refills.
//!
//! GCRA as in talos-cache's limiters, but with a separate look ([`FailureLimit::blocked`]) and
//! count ([`FailureLimit::record_failure`]): only failures count, and whether a request fails is
//! known only after it was verified. In process memory, per node: a Redis round trip on every
//! gateway request would cost more than the whole cached verification, and N nodes multiply a
//! budget by at most N, a constant factor against a search over key space.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;

use crate::config::FailureLimitConfig;

/// Addresses tracked at most; the least used are forgotten first.
const MAX_ADDRESSES: u64 = 100_000;

/// Failed gateway verifications per client address.
pub struct FailureLimit {
    /// Emission interval `T = window / quota` and burst `quota · T`, in nanoseconds; `None` = off.
    rate: Option<(u128, u128)>,
    origin: Instant,
    /// Theoretical arrival time per address bucket, nanoseconds since `origin`.
    tats: Cache<IpAddr, u128>,
}

impl std::fmt::Debug for FailureLimit {
    /// The settings, not the tracked addresses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLimit")
            .field("rate_ns", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Default for FailureLimit {
    fn default() -> Self {
        FailureLimit::from_config(&FailureLimitConfig::default())
    }
}

impl FailureLimit {
    /// `quota` failures per `window`; a zero quota or window turns the limit off.
    pub fn new(quota: u64, window: Duration) -> Self {
        let rate = (quota > 0 && !window.is_zero()).then(|| {
            let t = (window.as_nanos() / u128::from(quota)).max(1);
            (t, t * u128::from(quota))
        });
        FailureLimit {
            rate,
            origin: Instant::now(),
            // A bucket left alone for a window is full again: its entry says nothing any more.
            tats: Cache::builder()
                .max_capacity(MAX_ADDRESSES)
                .time_to_live(window.max(Duration::from_secs(1)))
                .build(),
        }
    }

    pub fn from_config(c: &FailureLimitConfig) -> Self {
        FailureLimit::new(c.quota, c.window.get())
    }

    /// No limit (tests that count failures on purpose).
    pub fn off() -> Self {
        FailureLimit::new(0, Duration::ZERO)
    }

    fn now(&self) -> u128 {
        self.origin.elapsed().as_nanos()
    }

    /// `Some(wait)` when `ip` has no failed verification left: how long until it has one.
    pub fn blocked(&self, ip: Option<IpAddr>) -> Option<Duration> {
        let (t, burst) = self.rate?;
        let tat = self.tats.get(&bucket(ip))?;
        let now = self.now();
        // One more failure is allowed when max(tat, now) + T - burst <= now.
        let allow_at = tat.max(now) + t;
        (allow_at > now + burst).then(|| nanos(allow_at - burst - now))
    }

    /// Counts one failed verification from `ip` (nothing once the budget is used up: the
    /// address is blocked for at most one interval past its budget, however many requests
    /// raced past [`FailureLimit::blocked`]).
    pub fn record_failure(&self, ip: Option<IpAddr>) {
        let Some((t, burst)) = self.rate else { return };
        let now = self.now();
        // `and_compute_with` runs one closure per key at a time: read-and-set is atomic.
        self.tats.entry(bucket(ip)).and_compute_with(|cur| {
            let tat = cur.map_or(now, |e| e.into_value()).max(now) + t;
            if tat <= now + burst {
                Op::Put(tat)
            } else {
                Op::Nop
            }
        });
    }
}

/// The bucket of an address: IPv4 as is (also when mapped into IPv6), IPv6 by its /64 (one
/// host usually holds a whole /64); unknown addresses share one bucket.
fn bucket(ip: Option<IpAddr>) -> IpAddr {
    match ip {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_burst_of_quota_then_blocked_per_address() {
        let l = FailureLimit::new(3, Duration::from_secs(3600));
        for _ in 0..3 {
            assert_eq!(l.blocked(ip("192.0.2.1")), None);
            l.record_failure(ip("192.0.2.1"));
        }
        let wait = l.blocked(ip("192.0.2.1")).expect("budget used up");
        assert!(wait > Duration::from_secs(1100) && wait <= Duration::from_secs(1200));
        assert_eq!(l.blocked(ip("192.0.2.2")), None, "another address");
        // Further failures do not push the wait out.
        l.record_failure(ip("192.0.2.1"));
        assert!(l.blocked(ip("192.0.2.1")).unwrap() <= wait);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let l = FailureLimit::new(1, Duration::from_secs(3600));
        l.record_failure(ip("2001:db8:1:2::1"));
        assert!(l.blocked(ip("2001:db8:1:2:ffff::9")).is_some());
        assert!(l.blocked(ip("2001:db8:1:3::1")).is_none());
        l.record_failure(ip("::ffff:198.51.100.7"));
        assert!(l.blocked(ip("198.51.100.7")).is_some());
        l.record_failure(None);
        assert!(l.blocked(None).is_some());
    }

    #[test]
    fn off_never_blocks() {
        let l = FailureLimit::off();
        for _ in 0..100 {
            l.record_failure(ip("192.0.2.1"));
        }
        assert_eq!(l.blocked(ip("192.0.2.1")), None);
    }
}
