//! Verification. Order (reference.md §7): secret configured, format, checksum (current then
//! retired secrets), timestamp, prefix — all without I/O — then cache, storage, status, expiry,
//! IP restriction, rate limit. Derived tokens verify with no storage access, are never cached
//! and never rate limited.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use talos_cache::{CacheKey, Decision, Rate};
use talos_credentials::claims::DerivedClaims;
use talos_credentials::{imported, issued, route};
use talos_storage::{KeyKind, KeyRecord, KeyStatus, RateLimitPolicy, Visibility};
use uuid::Uuid;

use super::{CachedKey, Service, imported_cache_key};
use crate::runtime::Runtime;

/// How the request wants the cache used (from `Cache-Control` / `Pragma`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Read and write.
    #[default]
    Normal,
    /// `no-cache`: skip the read, still write.
    NoCache,
    /// `no-store`: skip read and write.
    NoStore,
}

/// The `Ory-Talos-Cache` header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Skip,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Skip => "SKIP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyErrorCode {
    InvalidFormat,
    Expired,
    Revoked,
    NotFound,
    SignatureInvalid,
    Internal,
    IpNotAllowed,
    RateLimited,
}

impl VerifyErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyErrorCode::InvalidFormat => "VERIFICATION_ERROR_INVALID_FORMAT",
            VerifyErrorCode::Expired => "VERIFICATION_ERROR_EXPIRED",
            VerifyErrorCode::Revoked => "VERIFICATION_ERROR_REVOKED",
            VerifyErrorCode::NotFound => "VERIFICATION_ERROR_NOT_FOUND",
            VerifyErrorCode::SignatureInvalid => "VERIFICATION_ERROR_SIGNATURE_INVALID",
            VerifyErrorCode::Internal => "VERIFICATION_ERROR_INTERNAL",
            VerifyErrorCode::IpNotAllowed => "VERIFICATION_ERROR_IP_NOT_ALLOWED",
            VerifyErrorCode::RateLimited => "VERIFICATION_ERROR_RATE_LIMITED",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifyFailure {
    pub code: VerifyErrorCode,
    pub message: String,
}

fn fail(code: VerifyErrorCode, message: &str) -> VerifyFailure {
    VerifyFailure {
        code,
        message: message.to_string(),
    }
}

/// The identity a valid credential carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub key_id: String,
    pub actor_id: String,
    pub scopes: Vec<String>,
    pub metadata: Map<String, Value>,
    pub expire_time: Option<DateTime<Utc>>,
    pub visibility: Visibility,
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// The stored key behind it (not set for derived tokens).
    pub record: Option<CachedKey>,
}

/// The limiter's answer for a key with a policy: present only when the limiter is enabled, the
/// key has a policy and the limiter answered (never invented).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitStatus {
    pub policy: RateLimitPolicy,
    /// Requests still allowed right now.
    pub remaining: u64,
    /// Allowed: when the full quota is available again. Limited: when the next request will be
    /// allowed.
    pub reset_time: DateTime<Utc>,
    /// Set when this request was refused: how long until one would be allowed.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct VerifyOutcome {
    pub result: Result<Verified, VerifyFailure>,
    pub cache: CacheStatus,
    /// The key carries an IP restriction (responses must not be cached downstream).
    pub ip_restricted: bool,
    /// The limiter is on and the key has a policy (responses must not be cached downstream).
    pub rate_limited_key: bool,
    pub rate_limit: Option<RateLimitStatus>,
}

impl VerifyOutcome {
    fn failed(code: VerifyErrorCode, message: &str, cache: CacheStatus) -> Self {
        VerifyOutcome {
            result: Err(fail(code, message)),
            cache,
            ip_restricted: false,
            rate_limited_key: false,
            rate_limit: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub credential: String,
    pub client_ip: Option<IpAddr>,
    pub cache: CacheMode,
}

fn claims_time(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

fn ip_check(cidrs: &[String], ip: Option<IpAddr>) -> bool {
    match (talos_credentials::cidr::parse_cidrs(cidrs), ip) {
        (Ok(nets), Some(ip)) => talos_credentials::cidr::ip_allowed(&nets, ip),
        _ => false, // unparseable restriction or unknown client IP: fail closed
    }
}

impl Service {
    pub async fn verify(&self, nid: Uuid, req: &VerifyRequest) -> VerifyOutcome {
        let outcome = self.verify_with(nid, req, true).await;
        let result = match &outcome.result {
            Ok(_) => "valid",
            Err(f) => {
                self.failures
                    .verification_failed(nid, f.code.as_str(), &f.message);
                f.code.as_str()
            }
        };
        metrics::counter!("talos_verify_total", "result" => result).increment(1);
        outcome
    }

    /// Verification that does not count against the key's rate limit (deriving a token checks
    /// its parent this way).
    pub(crate) async fn verify_uncounted(&self, nid: Uuid, req: &VerifyRequest) -> VerifyOutcome {
        self.verify_with(nid, req, false).await
    }

    async fn verify_with(&self, nid: Uuid, req: &VerifyRequest, count: bool) -> VerifyOutcome {
        let rt = self.runtime();
        if rt.keyring.current().is_err() {
            return VerifyOutcome::failed(
                VerifyErrorCode::Internal,
                "project has no HMAC key configured",
                CacheStatus::Skip,
            );
        }
        let cred = req.credential.as_str();
        if cred.is_empty() {
            return VerifyOutcome::failed(
                VerifyErrorCode::InvalidFormat,
                "credential is required",
                CacheStatus::Skip,
            );
        }
        if cred.len() > 4096 {
            return VerifyOutcome::failed(
                VerifyErrorCode::InvalidFormat,
                "credential must be at most 4096 characters",
                CacheStatus::Skip,
            );
        }
        let now = Utc::now();
        match route::classify(cred, &rt.allowed_prefixes, &rt.macaroon_prefixes) {
            route::Credential::Jwt(_) => self.verify_derived(&rt, nid, req, now, true),
            route::Credential::Macaroon(_) => self.verify_derived(&rt, nid, req, now, false),
            route::Credential::MalformedIssued(_) => VerifyOutcome::failed(
                VerifyErrorCode::NotFound,
                "API key not found",
                CacheStatus::Skip,
            ),
            route::Credential::Issued(parsed) => {
                if issued::verify_checksum(&parsed, &rt.keyring).is_none() {
                    return VerifyOutcome::failed(
                        VerifyErrorCode::NotFound,
                        "invalid API key checksum",
                        CacheStatus::Skip,
                    );
                }
                let skew = rt.clock_skew.as_secs() as i64;
                let age_limit = rt.max_ttl.as_secs() as i64;
                let ts = parsed.timestamp();
                if ts > now.timestamp() + skew || ts < now.timestamp().saturating_sub(age_limit) {
                    return VerifyOutcome::failed(
                        VerifyErrorCode::NotFound,
                        "timestamp out of range",
                        CacheStatus::Skip,
                    );
                }
                if !rt.allowed_prefixes.iter().any(|p| p == parsed.prefix()) {
                    return VerifyOutcome::failed(
                        VerifyErrorCode::NotFound,
                        "prefix not allowed",
                        CacheStatus::Skip,
                    );
                }
                let key_id = parsed.key_id().to_string();
                self.verify_stored(
                    &rt,
                    req,
                    now,
                    count,
                    CacheKey::new(nid, key_id.clone()),
                    async {
                        match self.store.get_key(nid, KeyKind::Issued, &key_id).await {
                            Ok(r) => Ok(Some(r)),
                            Err(talos_storage::StorageError::NotFound) => Ok(None),
                            Err(e) => Err(e),
                        }
                    },
                )
                .await
            }
            route::Credential::Imported(_) => {
                let hashes: Vec<[u8; 32]> = rt
                    .keyring
                    .iter()
                    .map(|e| imported::hash(e, nid, cred.as_bytes()))
                    .collect();
                let current = hashes[0];
                let cache_key = CacheKey::new(nid, imported_cache_key(&current));
                let current_id = rt
                    .keyring
                    .current()
                    .map(|e| e.id().to_string())
                    .unwrap_or_default();
                self.verify_stored(&rt, req, now, count, cache_key, async {
                    let found = self.store.find_imported_by_hashes(nid, &hashes).await?;
                    let Some(rec) = found else { return Ok(None) };
                    let Some(old) = rec
                        .imported
                        .as_ref()
                        .map(|h| h.hash)
                        .filter(|h| *h != current)
                    else {
                        return Ok(Some(rec));
                    };
                    // Found under a retired secret: re-hash under the current one so the retired
                    // secret can eventually be dropped. The answer is the row the re-hash
                    // returns, never `rec`: a mutation may have committed in between, and its
                    // eviction named the hash it saw.
                    match self
                        .store
                        .rehash_imported(nid, &rec.key_id, &old, &current, &current_id)
                        .await
                    {
                        Ok(Some(fresh)) => {
                            // Nodes still on the old secret cache it under the old hash.
                            self.evict_key(&CacheKey::new(nid, imported_cache_key(&old)))
                                .await;
                            Ok(Some(fresh))
                        }
                        // Changed since it was read (re-hashed by another node, or deleted).
                        Ok(None) => self.store.find_imported_by_hashes(nid, &hashes).await,
                        Err(e) => {
                            // Answered from `rec`, which is not cached: its hash is not `current`.
                            tracing::warn!(error = %e, "re-hash of an imported key failed");
                            Ok(Some(rec))
                        }
                    }
                })
                .await
            }
        }
    }

    async fn verify_stored(
        &self,
        rt: &Runtime,
        req: &VerifyRequest,
        now: DateTime<Utc>,
        count: bool,
        cache_key: CacheKey,
        load: impl std::future::Future<Output = Result<Option<KeyRecord>, talos_storage::StorageError>>,
    ) -> VerifyOutcome {
        // A shared cache is read and filled only under the outbox lease (invalidation.rs).
        let use_cache = rt.cache_enabled && self.cache_trust.trusted();
        let mut status = CacheStatus::Skip;
        let mut record: Option<CachedKey> = None;
        if rt.cache_enabled && req.cache == CacheMode::Normal {
            status = CacheStatus::Miss;
            if use_cache {
                match self.cache.get(&cache_key).await {
                    Ok(Some(hit)) => {
                        status = CacheStatus::Hit;
                        record = Some(hit);
                    }
                    Ok(None) => {}
                    Err(e) => self.cache_error("read", &e),
                }
            }
        }
        let record = match record {
            Some(r) => r,
            None => {
                // Taken before the database read: the put below is refused if a mutation
                // evicts the key in between (see talos_cache::Ticket).
                let ticket = if use_cache && req.cache != CacheMode::NoStore {
                    self.cache
                        .ticket(&cache_key)
                        .await
                        .map_err(|e| self.cache_error("ticket", &e))
                        .ok()
                } else {
                    None
                };
                match load.await {
                    Ok(Some(r)) => {
                        let r = Arc::new(r);
                        // Only under the key that mutations evict: an imported row still hashed
                        // under a retired secret (re-hash failed) is not cached.
                        if let Some(ticket) = &ticket
                            && Self::cache_key(r.nid, &r) == cache_key
                        {
                            let ttl = match r.expire_time {
                                Some(exp) => (exp - now)
                                    .to_std()
                                    .unwrap_or(Duration::ZERO)
                                    .min(rt.cache_ttl),
                                None => rt.cache_ttl,
                            };
                            if ttl >= Duration::from_secs(1)
                                && let Err(e) =
                                    self.cache.put(&cache_key, r.clone(), ttl, ticket).await
                            {
                                self.cache_error("write", &e);
                            }
                        }
                        r
                    }
                    Ok(None) => {
                        return VerifyOutcome::failed(
                            VerifyErrorCode::NotFound,
                            "API key not found",
                            status,
                        );
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "verification lookup failed");
                        return VerifyOutcome::failed(
                            VerifyErrorCode::Internal,
                            "An internal server error occurred.",
                            status,
                        );
                    }
                }
            }
        };
        let ip_restricted = record.allowed_cidrs.as_ref().is_some_and(|c| !c.is_empty());
        let limit = record
            .rate_limit_policy
            .filter(|_| count && rt.rate_limit_enabled)
            .and_then(|p| {
                let rate = Rate::new(
                    u64::try_from(p.quota).ok()?,
                    Duration::from_secs(u64::try_from(p.window_secs).ok()?),
                )?;
                Some((p, rate))
            });
        let mut rate_limit = None;
        let result = match record.status_at(now) {
            KeyStatus::Revoked => Err(fail(VerifyErrorCode::Revoked, "API key has been revoked")),
            KeyStatus::Expired => Err(fail(VerifyErrorCode::Expired, "API key has expired")),
            KeyStatus::Active => match &record.allowed_cidrs {
                Some(c) if !c.is_empty() && !ip_check(c, req.client_ip) => Err(fail(
                    VerifyErrorCode::IpNotAllowed,
                    "client IP address is not allowed for this key",
                )),
                _ => match self.check_rate(&record, limit).await {
                    Err(limited) => {
                        rate_limit = limited;
                        Err(fail(VerifyErrorCode::RateLimited, "rate limit exceeded"))
                    }
                    Ok(status) => {
                        rate_limit = status;
                        self.touch(&record, now);
                        Ok(Verified {
                            key_id: record.key_id.clone(),
                            actor_id: record.actor_id.clone(),
                            scopes: record.scopes.clone(),
                            metadata: record.metadata.clone(),
                            expire_time: record.expire_time,
                            visibility: record.visibility,
                            rate_limit_policy: record.rate_limit_policy,
                            record: Some(record.clone()),
                        })
                    }
                },
            },
        };
        VerifyOutcome {
            result,
            cache: status,
            ip_restricted,
            rate_limited_key: limit.is_some(),
            rate_limit,
        }
    }

    /// Counts one request against the key's policy. `Ok(None)`: no limit applies, or the limiter
    /// is unreachable and fails open. `Err(status)`: refused (`None` when the limiter is
    /// unreachable and `rate_limit.fail_closed` is set).
    async fn check_rate(
        &self,
        record: &KeyRecord,
        limit: Option<(RateLimitPolicy, Rate)>,
    ) -> Result<Option<RateLimitStatus>, Option<RateLimitStatus>> {
        let Some((policy, rate)) = limit else {
            return Ok(None);
        };
        let key = CacheKey::new(record.nid, record.key_id.clone());
        match self.limiter.check(&key, rate).await {
            Ok(d) => {
                let status = rate_status(policy, d);
                if d.allowed {
                    Ok(Some(status))
                } else {
                    Err(Some(status))
                }
            }
            Err(e) => {
                if let Some(suppressed) = self.limiter_errors.allow() {
                    tracing::warn!(
                        error = %e,
                        limiter = self.limiter.kind(),
                        suppressed,
                        fail_closed = self.limiter_fail_closed,
                        "rate limiter unavailable; {}",
                        if self.limiter_fail_closed { "denying keys with a policy" } else { "allowing without counting" }
                    );
                }
                if self.limiter_fail_closed {
                    Err(None)
                } else {
                    Ok(None)
                }
            }
        }
    }

    fn verify_derived(
        &self,
        rt: &Runtime,
        nid: Uuid,
        req: &VerifyRequest,
        now: DateTime<Utc>,
        jwt: bool,
    ) -> VerifyOutcome {
        let parsed = if jwt {
            rt.jwks.verify(&req.credential).map_err(|e| e.to_string())
        } else {
            talos_credentials::macaroon::verify_macaroon(
                &rt.keyring,
                &req.credential,
                &rt.macaroon_prefixes,
            )
            .map_err(|e| e.to_string())
        };
        let claims = match parsed {
            Ok(c) => c,
            Err(msg) => {
                tracing::debug!(reason = %msg, "derived token rejected");
                return VerifyOutcome::failed(
                    VerifyErrorCode::SignatureInvalid,
                    "token signature is invalid",
                    CacheStatus::Skip,
                );
            }
        };
        let result = check_claims(rt, &claims, nid, req.client_ip, now).map(|()| {
            let mut metadata = claims.custom.clone();
            for (k, v) in &claims.meta {
                metadata.insert(k.clone(), v.clone());
            }
            Verified {
                key_id: claims.sub.clone(),
                actor_id: claims.act.clone(),
                scopes: claims.scp.clone(),
                metadata,
                expire_time: claims_time(claims.exp),
                visibility: match claims.vis {
                    talos_credentials::claims::Visibility::Public => Visibility::Public,
                    talos_credentials::claims::Visibility::Secret => Visibility::Secret,
                },
                rate_limit_policy: None,
                record: None,
            }
        });
        VerifyOutcome {
            result,
            cache: CacheStatus::Skip,
            ip_restricted: !claims.acl.is_empty(),
            rate_limited_key: false,
            rate_limit: None,
        }
    }
}

fn rate_status(policy: RateLimitPolicy, d: Decision) -> RateLimitStatus {
    let until = if d.allowed {
        d.reset_after
    } else {
        d.retry_after
    };
    let reset_time = chrono::Duration::from_std(until)
        .ok()
        .and_then(|u| Utc::now().checked_add_signed(u))
        .unwrap_or_else(Utc::now);
    RateLimitStatus {
        policy,
        remaining: d.remaining,
        reset_time,
        retry_after: (!d.allowed).then_some(d.retry_after),
    }
}

fn check_claims(
    rt: &Runtime,
    c: &DerivedClaims,
    nid: Uuid,
    ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<(), VerifyFailure> {
    let t = now.timestamp();
    if t >= c.exp {
        return Err(fail(VerifyErrorCode::Expired, "token has expired"));
    }
    if c.nbf > t + rt.clock_skew.as_secs() as i64 {
        return Err(fail(
            VerifyErrorCode::InvalidFormat,
            "token is not valid yet",
        ));
    }
    if !rt.issuer_accepted(&c.iss, now) {
        return Err(fail(
            VerifyErrorCode::NotFound,
            "token issuer is not accepted",
        ));
    }
    if c.nid != nid {
        return Err(fail(
            VerifyErrorCode::NotFound,
            "token not valid for this network",
        ));
    }
    if !c.acl.is_empty() && !ip_check(&c.acl, ip) {
        return Err(fail(
            VerifyErrorCode::IpNotAllowed,
            "client IP address is not allowed for this token",
        ));
    }
    Ok(())
}
