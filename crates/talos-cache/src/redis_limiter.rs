//! GCRA in Redis: one Lua script per check (EVALSHA, loading the script on NOSCRIPT), using the
//! Redis server's clock so that every node shares one timeline. Times are microseconds since
//! 2025-01-01 (Lua numbers are doubles: counting from 1970 would leave a resolution of 0.25 µs;
//! from 2025 it stays below 0.03 µs until 2030, so intervals down to a few µs — quotas up to about
//! 300,000 per second — are exact to well under 1%).

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use crate::{CacheError, CacheKey, Decision, Rate, RateLimiter, Redis};

/// KEYS[1] the key's TAT; ARGV[1] emission interval µs; ARGV[2] burst µs (interval × quota).
/// Returns {allowed, remaining, retry_after µs, reset_after µs}.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1735689600) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', ttl_ms)
return {1, math.floor((now - allow_at) / interval), 0, math.ceil(new_tat - now)}
";

/// The shared limiter: every node using the same Redis (and namespace) counts against one
/// bucket per key, `<ns>:v1:rl:<nid>:<key>`.
pub struct RedisLimiter {
    redis: Redis,
    script: Script,
}

impl RedisLimiter {
    pub fn new(redis: Redis) -> Self {
        RedisLimiter {
            redis,
            script: Script::new(GCRA_SCRIPT),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn check(&self, key: &CacheKey, rate: Rate) -> Result<Decision, CacheError> {
        let k = &self.redis.key("rl", key);
        let interval_us = rate.emission_interval_nanos() as f64 / 1000.0;
        let burst_us = interval_us * rate.quota as f64;
        let script = &self.script;
        let (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64) = self
            .redis
            .exec(|mut c| async move {
                let mut inv = script.prepare_invoke();
                inv.key(k)
                    .arg(format!("{interval_us:.3}"))
                    .arg(format!("{burst_us:.3}"));
                inv.invoke_async(&mut c).await
            })
            .await?;
        let us = |v: i64| Duration::from_micros(v.max(0) as u64);
        Ok(Decision {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u64,
            retry_after: us(retry_us),
            reset_after: us(reset_us),
        })
    }
}
