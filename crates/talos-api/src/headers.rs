//! Header names of the wire format and the values Talos defines for them.

/// Whether a verification was answered from the server's cache: [`CacheResult`].
pub const CACHE: &str = "Ory-Talos-Cache";

/// The request id, echoed (or generated) on every response.
pub const REQUEST_ID: &str = "X-Request-ID";

/// The key's rate-limit policy (`"default";q=<quota>;w=<window seconds>`), on a verify that the
/// limiter answered.
pub const RATE_LIMIT_POLICY: &str = "RateLimit-Policy";

/// The requests left in the window (`"default";r=<remaining>`).
pub const RATE_LIMIT: &str = "RateLimit";

/// `Retry-After` seconds on a verify the rate limit refused.
pub const RETRY_AFTER: &str = "Retry-After";

/// Upstream's Content Security Policy: the API serves JSON only (the OpenAPI document too), so
/// nothing may load, run or frame it. `default-src 'self'` and `frame-ancestors 'none'` are
/// upstream's; the directives between them close what `default-src` does not cover.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'self'; form-action 'self'; \
object-src 'none'; frame-ancestors 'none'";

/// Browser features a response may use: none (an API has no use for camera, location, …).
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
display-capture=(), fullscreen=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), \
midi=(), payment=(), usb=()";

/// The security headers every response carries (upstream's set, plus `Permissions-Policy`), as
/// lower-case names and their values.
pub const SECURITY: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("permissions-policy", PERMISSIONS_POLICY),
];

/// Gateway verify's answer for a valid credential: the key id (the parent key's, for a derived
/// token).
pub const KEY_ID: &str = "X-Talos-Key-Id";

/// Gateway verify's answer for a valid credential: the key's actor.
pub const ACTOR_ID: &str = "X-Talos-Actor-Id";

/// Gateway verify's answer for a valid credential: the key's scopes, comma-joined.
pub const SCOPES: &str = "X-Talos-Scopes";

/// Gateway verify's request: scopes the credential must all carry (comma list), as the query
/// parameter [`SCOPE_PARAM`] does.
pub const REQUIRED_SCOPES: &str = "X-Talos-Required-Scopes";

/// Gateway verify's query parameter naming one required scope (repeatable).
pub const SCOPE_PARAM: &str = "scope";

/// A credential sent without an `Authorization` header (gateway verify).
pub const API_KEY: &str = "X-API-Key";

/// The challenge of gateway verify's 401 and 403 answers (RFC 6750 §3).
pub const WWW_AUTHENTICATE: &str = "WWW-Authenticate";

/// The limiter's answer for one key, as the `RateLimit-Policy`, `RateLimit` and `Retry-After`
/// headers carry it. Present only when the limiter answered for a key with a policy (never a
/// made-up `0`); the verify endpoints and gateway verify render it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// Requests per window.
    pub quota: i64,
    /// The window in seconds.
    pub window_secs: i64,
    /// Requests still allowed now.
    pub remaining: u64,
    /// Set when the request was refused: whole seconds until one would be allowed (at least 1).
    pub retry_after_secs: Option<u64>,
}

impl RateLimitHeaders {
    /// The header pairs, `Retry-After` only for a refused request.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (
                RATE_LIMIT_POLICY,
                rate_limit_policy(self.quota, self.window_secs),
            ),
            (RATE_LIMIT, rate_limit(self.remaining)),
        ];
        if let Some(secs) = self.retry_after_secs {
            out.push((RETRY_AFTER, secs.max(1).to_string()));
        }
        out
    }

    /// Reads them back from a response's headers (`get` looks a header up by name): `None` unless
    /// both `RateLimit-Policy` and `RateLimit` are present and well formed.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let param = |value: &str, name: &str| -> Option<i64> {
            value
                .split(';')
                .skip(1)
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.trim().parse().ok())
        };
        let policy = get(RATE_LIMIT_POLICY)?;
        let limit = get(RATE_LIMIT)?;
        Some(RateLimitHeaders {
            quota: param(policy, "q")?,
            window_secs: param(policy, "w")?,
            remaining: u64::try_from(param(limit, "r")?).ok()?,
            retry_after_secs: get(RETRY_AFTER).and_then(|v| v.trim().parse().ok()),
        })
    }
}

/// The default header naming the actor of a self-service request, set by the authenticating
/// proxy (`self_service.user_id_header`).
pub const USER_ID: &str = "X-User-Id";

/// The value of [`CACHE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheResult {
    /// Answered from the cache.
    Hit,
    /// Looked up in the cache and not found there (or the cache was bypassed for reading).
    Miss,
    /// The cache was not consulted (cache off, `no-store`, or a credential that fails before it).
    Skip,
}

impl CacheResult {
    /// `HIT`, `MISS` or `SKIP`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "HIT",
            CacheResult::Miss => "MISS",
            CacheResult::Skip => "SKIP",
        }
    }

    /// Parses a header value (exact, upper case).
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "HIT" => Some(CacheResult::Hit),
            "MISS" => Some(CacheResult::Miss),
            "SKIP" => Some(CacheResult::Skip),
            _ => None,
        }
    }
}

/// `RateLimit-Policy` for a policy of `quota` requests per `window_secs`.
pub fn rate_limit_policy(quota: i64, window_secs: i64) -> String {
    format!("\"default\";q={quota};w={window_secs}")
}

/// `RateLimit` with `remaining` requests left.
pub fn rate_limit(remaining: u64) -> String {
    format!("\"default\";r={remaining}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&'static str, &'static str)]) -> Option<RateLimitHeaders> {
        RateLimitHeaders::from_headers(|name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        })
    }

    #[test]
    fn rate_limit_headers_read_back_what_they_write() {
        for h in [
            RateLimitHeaders {
                quota: 100,
                window_secs: 60,
                remaining: 99,
                retry_after_secs: None,
            },
            RateLimitHeaders {
                quota: 2,
                window_secs: 3600,
                remaining: 0,
                retry_after_secs: Some(1712),
            },
        ] {
            let pairs = h.pairs();
            let back = RateLimitHeaders::from_headers(|name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.as_str())
            });
            assert_eq!(back, Some(h));
        }
    }

    #[test]
    fn rate_limit_headers_missing_or_malformed_are_none() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("RateLimit-Policy", "\"default\";q=5;w=60")],
            &[("RateLimit", "\"default\";r=4")],
            &[
                ("RateLimit-Policy", "\"default\";q=five;w=60"),
                ("RateLimit", "\"default\";r=4"),
            ],
            &[
                ("RateLimit-Policy", "\"default\";q=5;w=60"),
                ("RateLimit", "\"default\";r=-1"),
            ],
        ];
        for c in cases {
            assert_eq!(read(c), None, "{c:?}");
        }
        assert_eq!(
            read(&[
                ("ratelimit-policy", "\"default\";q=5;w=60"),
                ("ratelimit", "\"default\";r=0"),
                ("retry-after", "7"),
            ]),
            Some(RateLimitHeaders {
                quota: 5,
                window_secs: 60,
                remaining: 0,
                retry_after_secs: Some(7)
            })
        );
    }
}
