//! What a call answers ([`Response`]) and how a verify is asked for ([`VerifyOptions`]).

use serde_json::Value;

use crate::types::VerifyApiKeyRequest;

/// A decoded response together with the server's exact JSON document.
///
/// `raw` is what a CLI prints for `--format json`, so that tools like `jq` see every field the server sent,
/// including ones this client version does not know.
#[derive(Debug, Clone)]
pub struct Response<T> {
    /// HTTP status code.
    pub status: u16,
    /// The typed view.
    pub body: T,
    /// The document as received (`Value::Null` for an empty body such as a 204).
    pub raw: Value,
    /// The `RateLimit-Policy`, `RateLimit` and `Retry-After` headers, when the server sent them
    /// (a verify of a key with a rate limit).
    pub rate_limit: Option<talos_api::headers::RateLimitHeaders>,
}

impl<T> std::ops::Deref for Response<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.body
    }
}

impl<T> Response<T> {
    /// Drops the raw document.
    pub fn into_inner(self) -> T {
        self.body
    }
}

/// A 2xx answer before it is decoded.
pub(crate) struct Exchanged {
    pub(crate) status: u16,
    pub(crate) raw: Value,
    pub(crate) rate_limit: Option<talos_api::headers::RateLimitHeaders>,
}

/// Options of verify and batch verify.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Send `Cache-Control: no-cache`: the server skips its cache read (it still refreshes the entry).
    pub no_cache: bool,
    /// Credits each verification spends from a key with credits (`None`: the server's default,
    /// 1; 0 only checks that some are left).
    pub cost: Option<u64>,
}

impl VerifyOptions {
    pub(crate) fn request(&self, credential: &str) -> VerifyApiKeyRequest {
        VerifyApiKeyRequest {
            credential: credential.to_owned(),
            cost: self.cost.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
        }
    }
}
