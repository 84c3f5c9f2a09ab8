//! Per-key rate limits with GCRA (the generic cell rate algorithm).
//!
//! A limit of `quota` requests per `window` has an emission interval `T = window / quota` and a
//! burst of `quota`. The state per key is one number, the theoretical arrival time (TAT). A
//! request at `now` is allowed when `max(TAT, now) + T - quota·T <= now`, and then moves TAT to
//! `max(TAT, now) + T`. Beyond the initial burst this grants exactly one request per `T`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::sync::Cache;

use crate::{CacheError, CacheKey};

/// `quota` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub quota: u64,
    pub window: Duration,
}

impl Rate {
    /// `None` when the limit cannot be enforced (zero quota or window).
    pub fn new(quota: u64, window: Duration) -> Option<Rate> {
        (quota > 0 && !window.is_zero()).then_some(Rate { quota, window })
    }

    /// `T = window / quota`, in nanoseconds (at least 1).
    pub fn emission_interval_nanos(&self) -> u128 {
        (self.window.as_nanos() / u128::from(self.quota)).max(1)
    }
}

/// The limiter's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests that may still be made right now (0 when denied).
    pub remaining: u64,
    /// When denied: how long until one request would be allowed. Zero when allowed.
    pub retry_after: Duration,
    /// How long until the full burst is available again.
    pub reset_after: Duration,
}

/// A shared counter per key. Implementations: [`MemoryLimiter`] (one node) and
/// [`crate::RedisLimiter`] (every node sharing a Redis).
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// `memory` or `redis`, for logs.
    fn kind(&self) -> &'static str;
    /// Counts one request against `key` and answers whether it is allowed.
    async fn check(&self, key: &CacheKey, rate: Rate) -> Result<Decision, CacheError>;
}

/// GCRA on integers: times in nanoseconds on one clock. Returns the decision and, when allowed,
/// the new TAT to store.
pub(crate) fn gcra(now: u128, stored_tat: Option<u128>, rate: Rate) -> (Decision, Option<u128>) {
    let t = rate.emission_interval_nanos();
    let burst = t * u128::from(rate.quota);
    let tat = stored_tat.unwrap_or(now).max(now);
    let new_tat = tat + t;
    // allow_at = new_tat - burst, which may lie before the clock's origin: compare shifted.
    if now + burst >= new_tat {
        let slack = now + burst - new_tat; // now - allow_at
        let decision = Decision {
            allowed: true,
            remaining: (slack / t).min(u128::from(u64::MAX)) as u64,
            retry_after: Duration::ZERO,
            reset_after: nanos(new_tat - now),
        };
        (decision, Some(new_tat))
    } else {
        let decision = Decision {
            allowed: false,
            remaining: 0,
            retry_after: nanos(new_tat - burst - now),
            reset_after: nanos(tat - now),
        };
        (decision, None)
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(n.min(u128::from(u64::MAX)) as u64)
}

#[derive(Clone, Copy)]
struct Tat {
    /// Nanoseconds since the limiter's origin.
    at: u128,
    /// Time until the bucket is full again: the entry is useless after that.
    ttl: Duration,
}

struct UntilFull;

impl Expiry<CacheKey, Tat> for UntilFull {
    fn expire_after_create(&self, _: &CacheKey, v: &Tat, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
    fn expire_after_update(
        &self,
        _: &CacheKey,
        v: &Tat,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// GCRA in process memory: exact for one node. State per key is dropped once its bucket is full
/// again; at most `max_keys` keys are tracked (the least used are forgotten first).
pub struct MemoryLimiter {
    origin: Instant,
    tats: Cache<CacheKey, Tat>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl MemoryLimiter {
    pub fn new(max_keys: u64) -> Self {
        MemoryLimiter {
            origin: Instant::now(),
            tats: Cache::builder()
                .max_capacity(max_keys)
                .expire_after(UntilFull)
                .build(),
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn check(&self, key: &CacheKey, rate: Rate) -> Result<Decision, CacheError> {
        let mut decision = None;
        // `and_compute_with` runs one closure per key at a time: check-and-set is atomic.
        self.tats.entry(key.clone()).and_compute_with(|cur| {
            let now = self.origin.elapsed().as_nanos();
            let (d, new_tat) = gcra(now, cur.map(|e| e.into_value().at), rate);
            decision = Some(d);
            match new_tat {
                Some(at) => Op::Put(Tat {
                    at,
                    ttl: d.reset_after,
                }),
                None => Op::Nop,
            }
        });
        decision.ok_or_else(|| CacheError::Unavailable("rate limiter state".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_burst_then_one_per_interval() {
        let rate = Rate::new(5, Duration::from_secs(1)).unwrap();
        let t = 200_000_000u128;
        let mut tat = None;
        let now = 10_000_000_000u128;
        for want in (0..5).rev() {
            let (d, n) = gcra(now, tat, rate);
            assert!(d.allowed);
            assert_eq!(d.remaining, want);
            tat = n;
        }
        let (d, n) = gcra(now, tat, rate);
        assert!(!d.allowed && n.is_none());
        assert_eq!(d.retry_after, Duration::from_nanos(t as u64));
        assert_eq!(d.reset_after, Duration::from_secs(1));
        // One interval later exactly one more is allowed.
        let (d, n) = gcra(now + t, tat, rate);
        assert!(d.allowed && d.remaining == 0);
        let (d, _) = gcra(now + t, n, rate);
        assert!(!d.allowed);
        // After a full window of silence the whole burst is back.
        let (d, _) = gcra(now + 2 * t + 1_000_000_000, n, rate);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn zero_limits_are_not_enforceable() {
        assert!(Rate::new(0, Duration::from_secs(1)).is_none());
        assert!(Rate::new(1, Duration::ZERO).is_none());
    }
}
