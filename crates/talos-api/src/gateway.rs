//! Gateway verify (`GET|POST /gateway/verify`, forward auth for reverse proxies) and the answer
//! every guard in front of a service gives for a verification: the bodies (camelCase, the
//! metering fork's shapes), and pure functions from a verify response to the HTTP status, headers
//! and body. The server's gateway route and the embeddable guards build their answers with
//! [`answer`], so a proxy and an in-process guard refuse the same request the same way.
//!
//! | verdict | status | headers |
//! |---|---|---|
//! | valid, scopes present | 200 | `X-Talos-Key-Id`, `X-Talos-Actor-Id`, `X-Talos-Scopes`, `RateLimit*` |
//! | no credential | 401 | `WWW-Authenticate: Bearer realm="talos"` |
//! | invalid, expired, revoked, unknown, bad signature | 401 | `WWW-Authenticate: Bearer error="invalid_token"` |
//! | valid, a required scope missing | 403 | `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` |
//! | client IP outside the key's allowlist | 403 | |
//! | balance exhausted (metering) | 402 | |
//! | the key's credits are used up (metering) | 429 | none: no retry helps before a refill |
//! | key rate limited, or too many failures from the client's address | 429 | `Retry-After`, `RateLimit*` |
//! | server-side failure | 500 | |

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codec::{
    de_lenient_object, de_lenient_opt_i64, de_lenient_opt_string, de_lenient_opt_time,
    null_default, ser_opt_i64_str, ser_opt_time,
};
use crate::enums::{KeyStatus, KeyVisibility, VerificationErrorCode};
use crate::headers::{self, RateLimitHeaders};
use crate::keys::{JsonObject, RateLimitPolicy};
use crate::schema;
use crate::verify::VerifyApiKeyResponse;

/// The optional JSON body of gateway verify. Without it (or when it does not parse, or names no
/// credential) the credential comes from `Authorization: Bearer`, then `X-API-Key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "GatewayVerifyRequest", extend("required" = []))]
pub struct GatewayVerifyRequest {
    /// Issued key, imported raw key, JWT or macaroon.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_string"
    )]
    #[schemars(length(max = 4096))]
    pub credential: Option<String>,
}

/// Gateway verify's 200 body: the verify response in camelCase (protobuf JSON names).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    rename = "GatewayVerifyResponse",
    extend("required" = [
        "isValid", "isActive", "keyId", "actorId", "scopes", "metadata", "issuer", "status",
        "visibility"
    ])
)]
pub struct GatewayVerifyResponse<'a> {
    /// Always true here (upstream's name).
    #[serde(default)]
    pub is_valid: bool,
    /// Always true here (the docs' name).
    #[serde(default)]
    pub is_active: bool,
    /// Key (or parent key, for derived tokens).
    #[serde(default, deserialize_with = "null_default")]
    pub key_id: String,
    /// Holder.
    #[serde(default, deserialize_with = "null_default")]
    pub actor_id: String,
    /// Scopes.
    #[serde(default, deserialize_with = "null_default")]
    pub scopes: Vec<String>,
    /// Metadata.
    #[serde(default, deserialize_with = "de_lenient_object")]
    pub metadata: JsonObject,
    /// Expiry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub expire_time: Option<DateTime<Utc>>,
    /// The configured issuer.
    #[serde(default, deserialize_with = "null_default")]
    pub issuer: Cow<'a, str>,
    /// Key status.
    #[serde(default)]
    pub status: KeyStatus,
    /// Visibility.
    #[serde(default)]
    pub visibility: KeyVisibility,
    /// The key's rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// Requests left in the window, when the limiter answered for this key (int64 as a string).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_i64",
        serialize_with = "ser_opt_i64_str"
    )]
    #[schemars(with = "Option<schema::Int64>")]
    pub rate_limit_remaining: Option<i64>,
    /// When the window resets.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_lenient_opt_time",
        serialize_with = "ser_opt_time"
    )]
    pub rate_limit_reset_time: Option<DateTime<Utc>>,
}

impl<'a> From<VerifyApiKeyResponse<'a>> for GatewayVerifyResponse<'a> {
    fn from(v: VerifyApiKeyResponse<'a>) -> Self {
        let valid = v.active();
        GatewayVerifyResponse {
            is_valid: valid,
            is_active: valid,
            key_id: v.key_id,
            actor_id: v.actor_id,
            scopes: v.scopes,
            metadata: v.metadata,
            expire_time: v.expire_time,
            issuer: v.issuer,
            status: v.status,
            visibility: v.visibility,
            rate_limit_policy: v.rate_limit_policy,
            rate_limit_remaining: v.rate_limit_remaining,
            rate_limit_reset_time: v.rate_limit_reset_time,
        }
    }
}

/// Gateway verify's body for every refusal (401, 402, 403, 429, 500).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    rename = "GatewayDenial",
    extend("required" = ["isValid", "errorMessage"])
)]
pub struct GatewayDenial<'a> {
    /// Always false.
    #[serde(default)]
    pub is_valid: bool,
    /// The verification's error code; absent when the credential is valid but lacks a required
    /// scope (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<VerificationErrorCode>,
    /// Human-readable reason.
    #[serde(default, deserialize_with = "null_default")]
    pub error_message: Cow<'a, str>,
    /// The required scopes the credential lacks (403 only).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub missing_scopes: Vec<String>,
}

/// The body of a gateway answer.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum GatewayBody<'a> {
    /// 200.
    Valid(GatewayVerifyResponse<'a>),
    /// Any refusal.
    Denied(GatewayDenial<'a>),
}

/// Why a gateway answered as it did; [`Verdict::status`] is the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Valid, with every required scope: 200.
    Allowed,
    /// No credential in the body, `Authorization` or `X-API-Key`: 401.
    MissingCredential,
    /// Not a valid credential (malformed, unknown, expired, revoked, bad signature): 401.
    InvalidCredential,
    /// Valid, but a required scope is missing: 403.
    InsufficientScope,
    /// Valid, but the client's address is outside the key's allowlist: 403.
    IpNotAllowed,
    /// The actor's metered balance is exhausted (`VERIFICATION_ERROR_BALANCE_EXHAUSTED`): 402.
    BalanceExhausted,
    /// The key's credits are used up (`VERIFICATION_ERROR_USAGE_EXCEEDED`): 429 without
    /// `Retry-After`, since only a refill or a top-up helps, not waiting a few seconds.
    UsageExceeded,
    /// The key's rate limit, or the limit on failed verifications per client address: 429.
    RateLimited,
    /// The server could not verify (storage down, no secret configured): 500.
    Internal,
}

impl Verdict {
    /// The HTTP status of the answer.
    pub const fn status(self) -> u16 {
        match self {
            Verdict::Allowed => 200,
            Verdict::MissingCredential | Verdict::InvalidCredential => 401,
            Verdict::BalanceExhausted => 402,
            Verdict::InsufficientScope | Verdict::IpNotAllowed => 403,
            Verdict::RateLimited | Verdict::UsageExceeded => 429,
            Verdict::Internal => 500,
        }
    }

    /// Whether this answer counts against the client address's budget of failed verifications:
    /// a wrong guess does; a valid key, a missing credential or a server failure does not.
    pub const fn is_failed_guess(self) -> bool {
        matches!(self, Verdict::InvalidCredential | Verdict::IpNotAllowed)
    }
}

/// A complete gateway answer: status, headers (in order) and body.
#[derive(Debug, Clone)]
pub struct GatewayAnswer<'a> {
    /// Why.
    pub verdict: Verdict,
    /// The HTTP status ([`Verdict::status`]).
    pub status: u16,
    /// Header name and value pairs, values already safe for a header (see [`header_value`]).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: GatewayBody<'a>,
}

/// The challenge of a 401 for an invalid credential.
pub const CHALLENGE_INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";

/// The challenge of a 401 without any credential (RFC 6750 §3.1: no error code then).
pub const CHALLENGE_NO_CREDENTIAL: &str = "Bearer realm=\"talos\"";

/// The message of a 401 without any credential.
pub const MISSING_CREDENTIAL_MESSAGE: &str =
    "credential is required (JSON body `credential`, `Authorization: Bearer`, or `X-API-Key`)";

/// The message of a 429 for too many failed verifications from one client address.
pub const TOO_MANY_FAILURES_MESSAGE: &str =
    "too many failed verifications from this client address";

fn denial<'a>(
    verdict: Verdict,
    code: Option<VerificationErrorCode>,
    message: Cow<'a, str>,
) -> GatewayAnswer<'a> {
    GatewayAnswer {
        verdict,
        status: verdict.status(),
        headers: Vec::new(),
        body: GatewayBody::Denied(GatewayDenial {
            is_valid: false,
            error_code: code,
            error_message: message,
            missing_scopes: Vec::new(),
        }),
    }
}

/// The answer for a verify response `v`, the limiter's headers for the key (`None` when the
/// limiter did not answer for it) and the scopes the route requires (all of them).
pub fn answer<'a>(
    v: VerifyApiKeyResponse<'a>,
    rate_limit: Option<RateLimitHeaders>,
    required_scopes: &[String],
) -> GatewayAnswer<'a> {
    let limit_headers = rate_limit.map(|r| r.pairs()).unwrap_or_default();
    if v.active() {
        let missing: Vec<String> = required_scopes
            .iter()
            .filter(|r| !v.scopes.contains(r))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return insufficient_scope(missing);
        }
        let mut headers = vec![
            (headers::KEY_ID, header_value(&v.key_id, b"")),
            (headers::ACTOR_ID, header_value(&v.actor_id, b"")),
            (headers::SCOPES, scopes_header(&v.scopes)),
        ];
        headers.extend(limit_headers);
        return GatewayAnswer {
            verdict: Verdict::Allowed,
            status: 200,
            headers,
            body: GatewayBody::Valid(v.into()),
        };
    }
    let code = v.error_code.unwrap_or_default();
    let message = v
        .error_message
        .filter(|m| !m.is_empty())
        .unwrap_or(Cow::Borrowed("credential is not valid"));
    let verdict = match code {
        VerificationErrorCode::Unspecified
        | VerificationErrorCode::InvalidFormat
        | VerificationErrorCode::Expired
        | VerificationErrorCode::Revoked
        | VerificationErrorCode::NotFound
        | VerificationErrorCode::SignatureInvalid => Verdict::InvalidCredential,
        VerificationErrorCode::IpNotAllowed => Verdict::IpNotAllowed,
        VerificationErrorCode::RateLimited => Verdict::RateLimited,
        VerificationErrorCode::BalanceExhausted => Verdict::BalanceExhausted,
        VerificationErrorCode::UsageExceeded => Verdict::UsageExceeded,
        VerificationErrorCode::Internal => Verdict::Internal,
    };
    let mut a = denial(verdict, Some(code), message);
    match verdict {
        Verdict::InvalidCredential => a
            .headers
            .push((headers::WWW_AUTHENTICATE, CHALLENGE_INVALID_TOKEN.into())),
        Verdict::RateLimited => {
            a.headers.extend(limit_headers);
            // A refusal without the limiter's figures (it failed closed) still says when to retry.
            if !a.headers.iter().any(|(n, _)| *n == headers::RETRY_AFTER) {
                a.headers.push((headers::RETRY_AFTER, "1".into()));
            }
        }
        _ => {}
    }
    a
}

/// The 403 for a valid credential without every required scope.
fn insufficient_scope<'a>(missing: Vec<String>) -> GatewayAnswer<'a> {
    let listed: Vec<String> = missing.iter().map(|s| header_value(s, b" ,\"\\")).collect();
    let mut a = denial(
        Verdict::InsufficientScope,
        None,
        Cow::Owned(format!(
            "the credential lacks required scopes: {}",
            missing.join(", ")
        )),
    );
    a.headers.push((
        headers::WWW_AUTHENTICATE,
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\"",
            listed.join(" ")
        ),
    ));
    if let GatewayBody::Denied(d) = &mut a.body {
        d.missing_scopes = missing;
    }
    a
}

/// The 401 when the request carries no credential at all.
pub fn missing_credential() -> GatewayAnswer<'static> {
    let mut a = denial(
        Verdict::MissingCredential,
        Some(VerificationErrorCode::InvalidFormat),
        Cow::Borrowed(MISSING_CREDENTIAL_MESSAGE),
    );
    a.headers
        .push((headers::WWW_AUTHENTICATE, CHALLENGE_NO_CREDENTIAL.into()));
    a
}

/// The 429 for a client address that used up its failed verifications; nothing was verified.
pub fn too_many_failures(retry_after_secs: u64) -> GatewayAnswer<'static> {
    let mut a = denial(
        Verdict::RateLimited,
        Some(VerificationErrorCode::RateLimited),
        Cow::Borrowed(TOO_MANY_FAILURES_MESSAGE),
    );
    a.headers
        .push((headers::RETRY_AFTER, retry_after_secs.max(1).to_string()));
    a
}

/// The credential of a gateway request: the body's `credential` (already extracted; empty means
/// none), else the token of `Authorization: Bearer <token>` (scheme case-insensitive; a value
/// without any scheme is taken whole, as the metering fork does; another scheme is not a
/// credential), else `X-API-Key`.
pub fn credential<'a>(
    body: Option<&'a str>,
    authorization: Option<&'a str>,
    api_key: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization.map(str::trim).and_then(|a| {
        match a.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            Some(_) => None,
            None if a.eq_ignore_ascii_case("bearer") => None,
            None => Some(a),
        }
    });
    [body, bearer, api_key.map(str::trim)]
        .into_iter()
        .flatten()
        .find(|c| !c.is_empty())
}

/// The required scopes: each `scope` query value, then each entry of the
/// `X-Talos-Required-Scopes` comma list; blanks dropped, duplicates kept once.
pub fn required_scopes<'a>(
    query_values: impl IntoIterator<Item = &'a str>,
    header: Option<&'a str>,
) -> Vec<String> {
    let from_header = header.into_iter().flat_map(|h| h.split(','));
    let mut out: Vec<String> = Vec::new();
    for s in query_values.into_iter().chain(from_header).map(str::trim) {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// `X-Talos-Scopes`: the scopes comma-joined, each encoded by [`header_value`] with `,` also
/// escaped, so a scope containing a comma cannot be read as two.
pub fn scopes_header(scopes: &[String]) -> String {
    scopes
        .iter()
        .map(|s| header_value(s, b","))
        .collect::<Vec<_>>()
        .join(",")
}

/// A value made safe for a header: `%`, control characters, non-ASCII bytes, a leading or
/// trailing space and the bytes in `extra` are percent-encoded (`%XX`, UTF-8 bytes); everything
/// else is kept, so ordinary ids and scopes pass unchanged. Percent-decoding gives the value back.
pub fn header_value(v: &str, extra: &[u8]) -> String {
    let bytes = v.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let escape = |i: usize, b: u8| {
        b == b'%'
            || !(0x20..0x7f).contains(&b)
            || extra.contains(&b)
            || (b == b' ' && (i == 0 || i == last))
    };
    if !bytes.iter().enumerate().any(|(i, &b)| escape(i, b)) {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 8);
    for (i, &b) in bytes.iter().enumerate() {
        if escape(i, b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(b as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid(scopes: &[&str]) -> VerifyApiKeyResponse<'static> {
        VerifyApiKeyResponse {
            is_valid: Some(true),
            is_active: Some(true),
            key_id: "k1".into(),
            actor_id: "user 42".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            issuer: Cow::Borrowed("iss"),
            status: KeyStatus::Active,
            ..Default::default()
        }
    }

    fn failed(code: VerificationErrorCode, message: &'static str) -> VerifyApiKeyResponse<'static> {
        VerifyApiKeyResponse {
            is_valid: Some(false),
            is_active: Some(false),
            error_code: Some(code),
            error_message: Some(Cow::Borrowed(message)),
            ..Default::default()
        }
    }

    fn header<'a>(a: &'a GatewayAnswer<'_>, name: &str) -> Option<&'a str> {
        a.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn valid_answer_carries_identity_and_limits() {
        let limit = RateLimitHeaders {
            quota: 10,
            window_secs: 60,
            remaining: 9,
            retry_after_secs: None,
        };
        let a = answer(valid(&["read", "a,b"]), Some(limit), &["read".into()]);
        assert_eq!((a.verdict, a.status), (Verdict::Allowed, 200));
        assert_eq!(header(&a, headers::KEY_ID), Some("k1"));
        assert_eq!(header(&a, headers::ACTOR_ID), Some("user 42"));
        assert_eq!(header(&a, headers::SCOPES), Some("read,a%2Cb"));
        assert_eq!(header(&a, headers::RATE_LIMIT), Some("\"default\";r=9"));
        assert_eq!(header(&a, headers::RETRY_AFTER), None);
        let body = serde_json::to_value(&a.body).unwrap();
        assert_eq!(
            body,
            json!({"isValid": true, "isActive": true, "keyId": "k1", "actorId": "user 42",
                   "scopes": ["read", "a,b"], "metadata": {}, "issuer": "iss",
                   "status": "KEY_STATUS_ACTIVE", "visibility": "KEY_VISIBILITY_UNSPECIFIED"})
        );
    }

    #[test]
    fn missing_scope_is_403_with_the_rfc_6750_challenge() {
        let a = answer(valid(&["read"]), None, &["read".into(), "write".into()]);
        assert_eq!((a.verdict, a.status), (Verdict::InsufficientScope, 403));
        assert_eq!(
            header(&a, headers::WWW_AUTHENTICATE),
            Some("Bearer error=\"insufficient_scope\", scope=\"write\"")
        );
        assert_eq!(
            header(&a, headers::KEY_ID),
            None,
            "no identity on a refusal"
        );
        let body = serde_json::to_value(&a.body).unwrap();
        assert_eq!(body["isValid"], false);
        assert_eq!(body["missingScopes"], json!(["write"]));
        assert!(body.get("errorCode").is_none());
    }

    #[test]
    fn failures_map_to_statuses() {
        use VerificationErrorCode as C;
        for (code, status) in [
            (C::InvalidFormat, 401),
            (C::Expired, 401),
            (C::Revoked, 401),
            (C::NotFound, 401),
            (C::SignatureInvalid, 401),
            (C::IpNotAllowed, 403),
            (C::RateLimited, 429),
            (C::Internal, 500),
        ] {
            let a = answer(failed(code, "why"), None, &[]);
            assert_eq!(a.status, status, "{code:?}");
            assert_eq!(
                serde_json::to_value(&a.body).unwrap(),
                json!({"isValid": false, "errorCode": code.as_str(), "errorMessage": "why"})
            );
            assert_eq!(
                header(&a, headers::WWW_AUTHENTICATE).is_some(),
                status == 401,
                "{code:?}"
            );
        }
        let a = answer(failed(C::Revoked, "revoked"), None, &[]);
        assert_eq!(
            header(&a, headers::WWW_AUTHENTICATE),
            Some(CHALLENGE_INVALID_TOKEN)
        );
        assert!(a.verdict.is_failed_guess());
    }

    #[test]
    fn rate_limited_always_says_when_to_retry() {
        let a = answer(
            failed(VerificationErrorCode::RateLimited, "rate limit exceeded"),
            None,
            &[],
        );
        assert_eq!(header(&a, headers::RETRY_AFTER), Some("1"));
        let limit = RateLimitHeaders {
            quota: 2,
            window_secs: 60,
            remaining: 0,
            retry_after_secs: Some(30),
        };
        let a = answer(
            failed(VerificationErrorCode::RateLimited, "rate limit exceeded"),
            Some(limit),
            &[],
        );
        assert_eq!(header(&a, headers::RETRY_AFTER), Some("30"));
        assert_eq!(
            header(&a, headers::RATE_LIMIT_POLICY),
            Some("\"default\";q=2;w=60")
        );
        assert!(!a.verdict.is_failed_guess());
        let a = too_many_failures(0);
        assert_eq!(
            (a.status, header(&a, headers::RETRY_AFTER)),
            (429, Some("1"))
        );
        let a = missing_credential();
        assert_eq!(
            (a.status, header(&a, headers::WWW_AUTHENTICATE)),
            (401, Some(CHALLENGE_NO_CREDENTIAL))
        );
        assert!(!a.verdict.is_failed_guess());
    }

    #[test]
    fn credential_sources_in_order() {
        assert_eq!(
            credential(Some("b"), Some("Bearer a"), Some("x")),
            Some("b")
        );
        assert_eq!(
            credential(Some(""), Some("bearer  a "), Some("x")),
            Some("a")
        );
        assert_eq!(
            credential(None, Some("raw-key"), Some("x")),
            Some("raw-key")
        );
        assert_eq!(
            credential(None, Some("Basic dXNlcg=="), Some("x")),
            Some("x")
        );
        assert_eq!(credential(None, Some("Bearer "), Some(" x ")), Some("x"));
        assert_eq!(credential(None, None, Some("")), None);
    }

    #[test]
    fn required_scopes_from_query_and_header() {
        assert_eq!(
            required_scopes(["a", " ", "b"], Some("c, a,,d")),
            vec!["a", "b", "c", "d"]
        );
        assert!(required_scopes([], None).is_empty());
    }

    #[test]
    fn header_values_are_escaped_only_when_needed() {
        assert_eq!(header_value("user_42:x", b""), "user_42:x");
        assert_eq!(header_value("50%", b""), "50%25");
        assert_eq!(header_value("a\nb", b""), "a%0Ab");
        assert_eq!(header_value("é", b""), "%C3%A9");
        assert_eq!(header_value(" a b ", b""), "%20a b%20");
        assert_eq!(header_value("a b", b" "), "a%20b");
    }
}
