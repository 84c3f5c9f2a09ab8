//! The reloadable part of the configuration as one immutable snapshot: the keyring, credential
//! settings, JWKS, cache TTL and switches. A reload builds a new snapshot and swaps it atomically.

use std::time::Duration;

use chrono::{DateTime, Utc};
use talos_credentials::jwt::Jwks;
use talos_secrets::Keyring;

use crate::admin_auth::AdminTokens;
use crate::config::{Config, RetiredValue};

#[derive(Debug)]
pub struct Runtime {
    pub keyring: Keyring,
    pub issuer: String,
    pub issuer_retired: Vec<RetiredValue>,
    pub clock_skew: Duration,
    pub default_ttl: Option<Duration>,
    pub max_ttl: Duration,
    pub prefix: String,
    pub public_prefix: Option<String>,
    /// Every prefix a presented key may carry: current, public current, retired, public retired.
    pub allowed_prefixes: Vec<String>,
    pub macaroon_prefix: String,
    pub macaroon_prefixes: Vec<String>,
    pub derived_default_ttl: Duration,
    pub jwks: Jwks,
    pub jwt_signing_key_id: Option<String>,
    pub cache_enabled: bool,
    pub cache_ttl: Duration,
    pub rate_limit_enabled: bool,
    pub quota_max: u64,
    /// `serve.http.admin_auth.tokens` as digests; empty = the admin API is open.
    pub admin_tokens: AdminTokens,
}

impl Runtime {
    /// Builds the snapshot; reads `file://` JWKS URLs.
    pub fn build(c: &Config, now: DateTime<Utc>) -> Result<Runtime, String> {
        let keyring = Keyring::new(
            c.secrets.hmac.current.as_ref(),
            &c.secrets.hmac.retired,
            now,
        );
        let cred = &c.credentials;
        let p = &cred.api_keys.prefix;
        let mut allowed_prefixes = vec![p.current.clone()];
        allowed_prefixes.extend(p.public_current.iter().cloned());
        allowed_prefixes.extend(p.retired.iter().cloned());
        allowed_prefixes.extend(p.public_retired.iter().cloned());
        let m = &cred.derived_tokens.macaroon.prefix;
        let mut macaroon_prefixes = vec![m.current.clone()];
        macaroon_prefixes.extend(m.retired.iter().cloned());
        let jwks = load_jwks(&cred.derived_tokens.jwt.signing_keys.urls)?;
        let id = &cred.derived_tokens.jwt.signing_key_id;
        Ok(Runtime {
            keyring,
            issuer: cred.issuer.clone(),
            issuer_retired: cred.issuer_retired.clone(),
            clock_skew: cred.clock_skew.get(),
            default_ttl: cred.api_keys.default_ttl.map(|d| d.get()),
            max_ttl: cred.api_keys.max_ttl.get(),
            prefix: p.current.clone(),
            public_prefix: p.public_current.clone(),
            allowed_prefixes,
            macaroon_prefix: m.current.clone(),
            macaroon_prefixes,
            derived_default_ttl: cred.derived_tokens.default_ttl.get(),
            jwks,
            jwt_signing_key_id: (!id.is_empty()).then(|| id.clone()),
            cache_enabled: c.cache.enabled,
            cache_ttl: c.cache.ttl.get(),
            rate_limit_enabled: c.rate_limit.enabled,
            quota_max: c.quota.api_keys_max,
            admin_tokens: AdminTokens::new(&c.serve.http.admin_auth.tokens),
        })
    }

    /// Whether `iss` names this deployment: the current issuer or an unexpired retired one.
    pub fn issuer_accepted(&self, iss: &str, now: DateTime<Utc>) -> bool {
        iss == self.issuer
            || self
                .issuer_retired
                .iter()
                .any(|r| r.value() == iss && r.live_at(now))
    }
}

/// Loads every JWK set named by `urls` (`base64://` or `file://`) into one set.
pub fn load_jwks(urls: &[String]) -> Result<Jwks, String> {
    let mut sets = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let key = format!("credentials.derived_tokens.jwt.signing_keys.urls[{i}]");
        let bytes = if url.starts_with("base64://") {
            talos_credentials::jwt::decode_base64_url(url).map_err(|e| format!("{key}: {e}"))?
        } else if let Some(path) = url.strip_prefix("file://") {
            std::fs::read(path).map_err(|e| format!("{key}: cannot read {path}: {e}"))?
        } else {
            return Err(format!(
                "{key}: unsupported URL scheme (use base64:// or file://)"
            ));
        };
        sets.push(Jwks::from_json(&bytes).map_err(|e| format!("{key}: {e}"))?);
    }
    let mut all = Jwks::default();
    for s in sets {
        all.extend(s);
    }
    Ok(all)
}
