//! The reloadable part of the configuration as one immutable snapshot: the keyring, credential
//! settings, JWKS, cache TTL and switches. A reload builds a new snapshot and swaps it atomically.
//!
//! With multitenancy, a network with an overlay (`config_path`) has a snapshot of its own
//! ([`Runtimes`]); every other network uses the main one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use talos_credentials::jwt::Jwks;
use talos_secrets::Keyring;
use uuid::Uuid;

use crate::config::{Config, ConfigError, RetiredValue, apply_overlay};

/// The snapshots of every network: the main configuration's, and one per network overlay.
#[derive(Debug)]
pub(crate) struct Runtimes {
    main: Arc<Runtime>,
    overlays: BTreeMap<Uuid, Arc<Runtime>>,
    /// Whether some network uses `main` (multitenancy off, or a network without an overlay).
    main_in_use: bool,
}

/// What building the snapshots found: warnings to log, and the overlays that failed on a reload
/// (their networks keep their previous snapshot).
#[derive(Debug, Default)]
pub(crate) struct Built {
    pub(crate) warnings: Vec<String>,
    pub(crate) kept: Vec<ConfigError>,
}

impl Runtimes {
    /// Builds every snapshot. An overlay that fails is an error at startup (`previous` is
    /// `None`); on a reload its network keeps its snapshot from `previous` and the error is
    /// reported in [`Built::kept`].
    pub(crate) fn build(
        c: &Config,
        now: DateTime<Utc>,
        previous: Option<&Runtimes>,
    ) -> Result<(Runtimes, Built), ConfigError> {
        let main = Arc::new(Runtime::build(c, now)?);
        let mut built = Built::default();
        let mut overlays = BTreeMap::new();
        let mut main_in_use = !c.multitenancy.enabled || c.multitenancy.networks.is_empty();
        let networks = c
            .multitenancy
            .networks
            .iter()
            .filter(|_| c.multitenancy.enabled);
        for n in networks {
            let Some(path) = n.config_path.as_deref().filter(|p| !p.trim().is_empty()) else {
                main_in_use = true;
                continue;
            };
            if overlays.contains_key(&n.id) {
                continue; // another hostname of the same network
            }
            let runtime = apply_overlay(c, Path::new(path)).and_then(|(overlay, warnings)| {
                let rt = Runtime::build(&overlay, now)?;
                built.warnings.extend(
                    warnings
                        .into_iter()
                        .map(|w| format!("network {} ({path}): {w}", n.id)),
                );
                Ok(rt)
            });
            let runtime = match (runtime, previous.and_then(|p| p.overlays.get(&n.id))) {
                (Ok(rt), _) => Arc::new(rt),
                (Err(e), Some(old)) => {
                    built.kept.push(e);
                    old.clone()
                }
                (Err(e), None) => return Err(e),
            };
            overlays.insert(n.id, runtime);
        }
        Ok((
            Runtimes {
                main,
                overlays,
                main_in_use,
            },
            built,
        ))
    }

    /// The snapshot of network `nid`.
    pub(crate) fn get(&self, nid: Uuid) -> &Arc<Runtime> {
        self.overlays.get(&nid).unwrap_or(&self.main)
    }

    /// Every snapshot some network uses.
    pub(crate) fn in_use(&self) -> impl Iterator<Item = &Arc<Runtime>> {
        self.main_in_use
            .then_some(&self.main)
            .into_iter()
            .chain(self.overlays.values())
    }

    /// Every snapshot, used or not (imported keys may have been hashed under any).
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Runtime>> {
        std::iter::once(&self.main).chain(self.overlays.values())
    }
}

#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) keyring: Keyring,
    /// Shared, so that every verify answer can name it without a copy.
    pub(crate) issuer: Arc<str>,
    pub(crate) issuer_retired: Vec<RetiredValue>,
    pub(crate) clock_skew: Duration,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) max_ttl: Duration,
    pub(crate) prefix: String,
    pub(crate) public_prefix: Option<String>,
    /// Every prefix a presented key may carry: current, public current, retired, public retired.
    pub(crate) allowed_prefixes: Vec<String>,
    pub(crate) macaroon_prefix: String,
    pub(crate) macaroon_prefixes: Vec<String>,
    pub(crate) derived_default_ttl: Duration,
    pub(crate) jwks: Jwks,
    pub(crate) jwt_signing_key_id: Option<String>,
    pub(crate) cache_enabled: bool,
    pub(crate) cache_ttl: Duration,
    pub(crate) rate_limit_enabled: bool,
    pub(crate) quota_max: u64,
}

impl Runtime {
    /// Builds the snapshot; reads `file://` JWKS URLs.
    pub(crate) fn build(c: &Config, now: DateTime<Utc>) -> Result<Runtime, ConfigError> {
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
            issuer: cred.issuer.as_str().into(),
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
        })
    }

    /// Whether `iss` names this deployment: the current issuer or an unexpired retired one.
    pub(crate) fn issuer_accepted(&self, iss: &str, now: DateTime<Utc>) -> bool {
        iss == &*self.issuer
            || self
                .issuer_retired
                .iter()
                .any(|r| r.value() == iss && r.live_at(now))
    }
}

/// Loads every JWK set named by `urls` (`base64://` or `file://`) into one set, and counts the
/// load in upstream's `talos_keyservice_*` metrics.
pub(crate) fn load_jwks(urls: &[String]) -> Result<Jwks, ConfigError> {
    let start = std::time::Instant::now();
    let loaded = read_jwks(urls);
    crate::domain_metrics::domain()
        .keyservice_load(loaded.as_ref().ok().map(Jwks::len), start.elapsed());
    loaded
}

fn read_jwks(urls: &[String]) -> Result<Jwks, ConfigError> {
    let mut sets = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let unusable = |reason: String| ConfigError::Unusable {
            key: format!("credentials.derived_tokens.jwt.signing_keys.urls[{i}]"),
            reason,
        };
        let bytes = if url.starts_with("base64://") {
            talos_credentials::jwt::decode_base64_url(url).map_err(|e| unusable(e.to_string()))?
        } else if let Some(path) = url.strip_prefix("file://") {
            std::fs::read(path).map_err(|e| unusable(format!("cannot read {path}: {e}")))?
        } else {
            return Err(unusable(
                "unsupported URL scheme (use base64:// or file://)".into(),
            ));
        };
        sets.push(Jwks::from_json(&bytes).map_err(|e| unusable(e.to_string()))?);
    }
    let mut all = Jwks::default();
    for s in sets {
        all.extend(s);
    }
    Ok(all)
}
