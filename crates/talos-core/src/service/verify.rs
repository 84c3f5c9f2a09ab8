//! Verification. Order (reference.md §7): secret configured, format, checksum (current then
//! retired secrets), timestamp, prefix — all without I/O — then cache, storage, status, expiry,
//! IP restriction, rate limit, metering (the actor's balance, the key's credits: `metering.rs`).
//! Derived tokens verify with no storage access, are never cached, never rate limited and never
//! metered.
//!
//! One step per function: [`Service::verify_with`] routes the credential by kind; issued keys
//! ([`Service::verify_issued`]) and imported keys ([`Service::verify_imported`]) then share the
//! stored-key steps of [`Service::verify_stored`]: cache read, read-through (ticket, load, cache
//! fill) and the key's own checks. Loading an imported key may write: a key found under a retired
//! secret is re-hashed ([`Service::rehash_imported`]; docs/ARCHITECTURE.md, "Revocation
//! integrity").

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use talos_cache::{CacheKey, Decision, Rate, Ticket};
use talos_credentials::claims::DerivedClaims;
use talos_credentials::issued::ParsedKey;
use talos_credentials::{imported, issued, route};
use talos_storage::{KeyKind, KeyRecord, KeyStatus, RateLimitPolicy, StorageError, Visibility};
use tracing::Instrument;
use uuid::Uuid;

use super::metering::Metering;
use super::{CachedKey, Service, imported_cache_key};
use crate::domain_metrics::{self, CacheOp, VerifyKind};
use crate::error::{CoreError, Result};
use crate::runtime::Runtime;

/// The most credentials one batch verification takes.
pub const MAX_BATCH_VERIFY: usize = 100;

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

/// Whether a verification was answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from the cache.
    Hit,
    /// Looked up in the cache (or meant to be) and read from storage.
    Miss,
    /// The cache was not consulted.
    Skip,
}

/// Why a credential did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyErrorCode {
    InvalidFormat,
    Expired,
    Revoked,
    NotFound,
    SignatureInvalid,
    /// No `secrets.hmac.current` configured: nothing can verify.
    NoHmacKey,
    /// Storage failed; the cause is logged.
    Internal,
    IpNotAllowed,
    RateLimited,
    /// The key's actor has a balance quota and nothing left of it.
    BalanceExhausted,
    /// The key's credits cannot pay this verification's cost.
    UsageExceeded,
}

impl VerifyErrorCode {
    /// A stable lower-case label for metrics and audit events.
    pub fn label(self) -> &'static str {
        match self {
            VerifyErrorCode::InvalidFormat => "invalid_format",
            VerifyErrorCode::Expired => "expired",
            VerifyErrorCode::Revoked => "revoked",
            VerifyErrorCode::NotFound => "not_found",
            VerifyErrorCode::SignatureInvalid => "signature_invalid",
            VerifyErrorCode::NoHmacKey => "no_hmac_key",
            VerifyErrorCode::Internal => "internal",
            VerifyErrorCode::IpNotAllowed => "ip_not_allowed",
            VerifyErrorCode::RateLimited => "rate_limited",
            VerifyErrorCode::BalanceExhausted => "balance_exhausted",
            VerifyErrorCode::UsageExceeded => "usage_exceeded",
        }
    }
}

/// A failed verification: the outcome and a message fit for the caller's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyFailure {
    pub code: VerifyErrorCode,
    pub message: &'static str,
}

pub(crate) fn fail(code: VerifyErrorCode, message: &'static str) -> VerifyFailure {
    VerifyFailure { code, message }
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
    /// What metering found (credits left, the actor's balance); responses carrying it must not
    /// be cached downstream.
    pub metering: Metering,
}

impl VerifyOutcome {
    fn failed(failure: VerifyFailure, cache: CacheStatus) -> Self {
        VerifyOutcome {
            result: Err(failure),
            cache,
            ip_restricted: false,
            rate_limited_key: false,
            rate_limit: None,
            metering: Metering::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub credential: String,
    pub client_ip: Option<IpAddr>,
    pub cache: CacheMode,
    /// Credits this verification spends from a key that has credits: `None` = 1; 0 checks that
    /// some are left without spending.
    pub cost: Option<u64>,
}

/// What one verification works with.
pub(crate) struct Call<'a> {
    rt: &'a Runtime,
    pub(crate) nid: Uuid,
    pub(crate) req: &'a VerifyRequest,
    pub(crate) now: DateTime<Utc>,
    /// Whether the key's rate limit and metering count this verification.
    pub(crate) count: bool,
}

/// The span of one cache (or limiter) call, for tracing.
pub(crate) fn cache_span(name: &'static str, kind: &'static str) -> tracing::Span {
    tracing::debug_span!("cache", otel.name = name, cache.type = kind)
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

/// What fails before the credential's kind matters: no secret configured, no credential, too long.
fn check_request(rt: &Runtime, credential: &str) -> Result<(), VerifyFailure> {
    if rt.keyring.current().is_err() {
        return Err(fail(
            VerifyErrorCode::NoHmacKey,
            "project has no HMAC key configured",
        ));
    }
    if credential.is_empty() {
        return Err(fail(
            VerifyErrorCode::InvalidFormat,
            "credential is required",
        ));
    }
    if credential.len() > 4096 {
        return Err(fail(
            VerifyErrorCode::InvalidFormat,
            "credential must be at most 4096 characters",
        ));
    }
    Ok(())
}

/// An issued key's checks without I/O: checksum, timestamp, prefix.
fn check_issued(
    rt: &Runtime,
    parsed: &ParsedKey<'_>,
    now: DateTime<Utc>,
) -> Result<(), VerifyFailure> {
    if issued::verify_checksum(parsed, &rt.keyring).is_none() {
        return Err(fail(VerifyErrorCode::NotFound, "invalid API key checksum"));
    }
    let skew = rt.clock_skew.as_secs() as i64;
    let age_limit = rt.max_ttl.as_secs() as i64;
    let ts = parsed.timestamp();
    if ts > now.timestamp() + skew || ts < now.timestamp().saturating_sub(age_limit) {
        return Err(fail(VerifyErrorCode::NotFound, "timestamp out of range"));
    }
    if !rt.allowed_prefixes.iter().any(|p| p == parsed.prefix()) {
        return Err(fail(VerifyErrorCode::NotFound, "prefix not allowed"));
    }
    Ok(())
}

impl Service {
    #[tracing::instrument(level = "debug", name = "talos.verify", skip_all, fields(network = %nid))]
    pub async fn verify(&self, nid: Uuid, req: &VerifyRequest) -> VerifyOutcome {
        let start = std::time::Instant::now();
        let (outcome, kind) = self.verify_kind(nid, req, true).await;
        let failure = match &outcome.result {
            Ok(_) => None,
            Err(f) => {
                self.failures
                    .verification_failed(nid, f.code.label(), f.message);
                Some(f.code)
            }
        };
        domain_metrics::domain().verification(kind, failure, outcome.cache, start.elapsed());
        outcome
    }

    /// Verifies 1..[`MAX_BATCH_VERIFY`] credentials, one after the other, in order.
    #[tracing::instrument(level = "debug", name = "talos.verify_batch", skip_all, fields(network = %nid))]
    pub async fn verify_batch(
        &self,
        nid: Uuid,
        reqs: &[VerifyRequest],
    ) -> Result<Vec<VerifyOutcome>> {
        if reqs.is_empty() || reqs.len() > MAX_BATCH_VERIFY {
            return Err(CoreError::bad(format!(
                "requests must contain 1..{MAX_BATCH_VERIFY} items (got {})",
                reqs.len()
            )));
        }
        let mut outcomes = Vec::with_capacity(reqs.len());
        for req in reqs {
            outcomes.push(self.verify(nid, req).await);
        }
        Ok(outcomes)
    }

    /// Verification that does not count against the key's rate limit (deriving a token checks
    /// its parent this way).
    pub(crate) async fn verify_uncounted(&self, nid: Uuid, req: &VerifyRequest) -> VerifyOutcome {
        self.verify_with(nid, req, false).await
    }

    async fn verify_with(&self, nid: Uuid, req: &VerifyRequest, count: bool) -> VerifyOutcome {
        self.verify_kind(nid, req, count).await.0
    }

    /// Routes the credential by kind, after the checks every kind shares; answers the kind too
    /// (the metrics' `type`).
    async fn verify_kind(
        &self,
        nid: Uuid,
        req: &VerifyRequest,
        count: bool,
    ) -> (VerifyOutcome, VerifyKind) {
        let rt = self.runtime(nid);
        if let Err(f) = check_request(&rt, &req.credential) {
            return (
                VerifyOutcome::failed(f, CacheStatus::Skip),
                VerifyKind::Unknown,
            );
        }
        let call = Call {
            rt: &rt,
            nid,
            req,
            now: self.now(),
            count,
        };
        match route::classify(&req.credential, &rt.allowed_prefixes, &rt.macaroon_prefixes) {
            route::Credential::Jwt(_) => (self.verify_derived(&call, true), VerifyKind::Jwt),
            route::Credential::Macaroon(_) => {
                (self.verify_derived(&call, false), VerifyKind::Macaroon)
            }
            route::Credential::MalformedIssued(_) => (
                VerifyOutcome::failed(
                    fail(VerifyErrorCode::NotFound, "API key not found"),
                    CacheStatus::Skip,
                ),
                VerifyKind::Issued,
            ),
            route::Credential::Issued(parsed) => {
                (self.verify_issued(&call, &parsed).await, VerifyKind::Issued)
            }
            route::Credential::Imported(_) => {
                (self.verify_imported(&call).await, VerifyKind::Imported)
            }
        }
    }

    /// An issued key: its checks without I/O, then the stored key by id.
    async fn verify_issued(&self, call: &Call<'_>, parsed: &ParsedKey<'_>) -> VerifyOutcome {
        if let Err(f) = check_issued(call.rt, parsed, call.now) {
            return VerifyOutcome::failed(f, CacheStatus::Skip);
        }
        let key_id = parsed.key_id().to_string();
        let cache_key = CacheKey::new(call.nid, key_id.clone());
        self.verify_stored(call, cache_key, || self.load_issued(call.nid, &key_id))
            .await
    }

    async fn load_issued(
        &self,
        nid: Uuid,
        key_id: &str,
    ) -> Result<Option<KeyRecord>, StorageError> {
        // Lookups answer Ok(None) when nothing matches (the Store convention).
        self.store.get_key(nid, KeyKind::Issued, key_id).await
    }

    /// An imported key: the stored key by its keyed hash under each live secret, current first;
    /// cached under the current secret's hash.
    async fn verify_imported(&self, call: &Call<'_>) -> VerifyOutcome {
        let raw = call.req.credential.as_bytes();
        let hashes: Vec<[u8; 32]> = call
            .rt
            .keyring
            .iter()
            .map(|e| imported::hash(e, call.nid, raw))
            .collect();
        let cache_key = CacheKey::new(call.nid, imported_cache_key(&hashes[0]));
        self.verify_stored(call, cache_key, || self.load_imported(call, &hashes))
            .await
    }

    /// Finds an imported key by `hashes` (`hashes[0]`: under the current secret); one found under
    /// a retired secret is re-hashed first, and the answer is the row the re-hash returned.
    async fn load_imported(
        &self,
        call: &Call<'_>,
        hashes: &[[u8; 32]],
    ) -> Result<Option<KeyRecord>, StorageError> {
        let Some(rec) = self.store.find_imported_by_hashes(call.nid, hashes).await? else {
            return Ok(None);
        };
        let current = hashes[0];
        match rec
            .imported
            .as_ref()
            .map(|h| h.hash)
            .filter(|h| *h != current)
        {
            None => Ok(Some(rec)),
            Some(old) => self.rehash_imported(call, rec, old, hashes).await,
        }
    }

    /// The one write of verification: re-hashes an imported key found under a retired secret
    /// under the current one, so the retired secret can eventually be dropped. The answer is the
    /// row the `UPDATE … RETURNING` returns, never `rec`: a mutation may have committed in
    /// between, and its eviction named the hash it saw.
    async fn rehash_imported(
        &self,
        call: &Call<'_>,
        rec: KeyRecord,
        old: [u8; 32],
        hashes: &[[u8; 32]],
    ) -> Result<Option<KeyRecord>, StorageError> {
        let current = hashes[0];
        let current_id = call
            .rt
            .keyring
            .current()
            .map(|e| e.id().to_string())
            .unwrap_or_default();
        match self
            .store
            .rehash_imported(call.nid, &rec.key_id, &old, &current, &current_id)
            .await
        {
            Ok(Some(fresh)) => {
                // Nodes still on the old secret cache it under the old hash.
                self.evict_key(&CacheKey::new(call.nid, imported_cache_key(&old)))
                    .await;
                Ok(Some(fresh))
            }
            // Changed since it was read (re-hashed by another node, or deleted).
            Ok(None) => self.store.find_imported_by_hashes(call.nid, hashes).await,
            Err(e) => {
                // Answered from `rec`, which is not cached: its hash is not `current`.
                tracing::warn!(error = %e, "re-hash of an imported key failed");
                Ok(Some(rec))
            }
        }
    }

    /// A stored key, either kind: from the cache, else from storage through `load`; then the
    /// key's own checks.
    ///
    /// The storage path is built only on a miss (`load` is called then) and boxed: its future
    /// is kilobytes (the imported lookup holds its re-hash and eviction inline), and inline it
    /// would make every verification's future that large, to be zeroed and copied on each
    /// request, cache hits and forged keys included.
    async fn verify_stored<L>(
        &self,
        call: &Call<'_>,
        cache_key: CacheKey,
        load: impl FnOnce() -> L,
    ) -> VerifyOutcome
    where
        L: Future<Output = Result<Option<KeyRecord>, StorageError>>,
    {
        // A shared cache is read and filled only under the outbox lease (invalidation.rs).
        let use_cache = call.rt.cache_enabled && self.cache_trust.trusted();
        let (status, hit) = self.read_cache(call, &cache_key, use_cache).await;
        let record = match hit {
            Some(r) => r,
            None => match Box::pin(self.read_through(call, &cache_key, use_cache, load)).await {
                Ok(r) => r,
                Err(f) => return VerifyOutcome::failed(f, status),
            },
        };
        self.check_key(call, record, status).await
    }

    /// The cache lookup: `Skip` when the cache is off or the request bypasses it, else `Hit` or
    /// `Miss` (also when the cache may not be read or fails: storage answers then).
    async fn read_cache(
        &self,
        call: &Call<'_>,
        cache_key: &CacheKey,
        use_cache: bool,
    ) -> (CacheStatus, Option<CachedKey>) {
        if !call.rt.cache_enabled || call.req.cache != CacheMode::Normal {
            return (CacheStatus::Skip, None);
        }
        if !use_cache {
            return (CacheStatus::Miss, None);
        }
        let span = cache_span("cache.get", self.cache.kind());
        match self.cache.get(cache_key).instrument(span).await {
            Ok(Some(hit)) => (CacheStatus::Hit, Some(hit)),
            Ok(None) => (CacheStatus::Miss, None),
            Err(e) => {
                self.cache_error(CacheOp::Read, &e);
                (CacheStatus::Miss, None)
            }
        }
    }

    /// Storage behind the cache: a ticket, then `load`, then the row cached under that ticket.
    async fn read_through<L>(
        &self,
        call: &Call<'_>,
        cache_key: &CacheKey,
        use_cache: bool,
        load: impl FnOnce() -> L,
    ) -> Result<CachedKey, VerifyFailure>
    where
        L: Future<Output = Result<Option<KeyRecord>, StorageError>>,
    {
        // Taken before the database read: the put is refused if a mutation evicts the key in
        // between (see talos_cache::Ticket).
        let ticket = if use_cache && call.req.cache != CacheMode::NoStore {
            self.cache
                .ticket(cache_key)
                .instrument(cache_span("cache.ticket", self.cache.kind()))
                .await
                .map_err(|e| self.cache_error(CacheOp::Ticket, &e))
                .ok()
        } else {
            None
        };
        match load().await {
            Ok(Some(r)) => {
                let r = Arc::new(r);
                if let Some(ticket) = &ticket {
                    self.fill_cache(call, cache_key, &r, ticket).await;
                }
                Ok(r)
            }
            Ok(None) => Err(fail(VerifyErrorCode::NotFound, "API key not found")),
            Err(e) => {
                tracing::error!(error = %e, "verification lookup failed");
                Err(fail(
                    VerifyErrorCode::Internal,
                    "verification lookup failed",
                ))
            }
        }
    }

    /// Caches a row read under `ticket`, for at most `cache.ttl` and never past its expiry.
    async fn fill_cache(
        &self,
        call: &Call<'_>,
        cache_key: &CacheKey,
        record: &CachedKey,
        ticket: &Ticket,
    ) {
        // Only under the key that mutations evict: an imported row still hashed under a retired
        // secret (re-hash failed) is not cached.
        if Self::cache_key(record.nid, record) != *cache_key {
            return;
        }
        let ttl = match record.expire_time {
            Some(exp) => (exp - call.now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(call.rt.cache_ttl),
            None => call.rt.cache_ttl,
        };
        if ttl >= Duration::from_secs(1)
            && let Err(e) = self
                .cache
                .put(cache_key, record.clone(), ttl, ticket)
                .instrument(cache_span("cache.put", self.cache.kind()))
                .await
        {
            self.cache_error(CacheOp::Write, &e);
        }
    }

    /// A stored key's own checks: status, expiry, IP restriction, the rate limit, then metering.
    async fn check_key(
        &self,
        call: &Call<'_>,
        record: CachedKey,
        cache: CacheStatus,
    ) -> VerifyOutcome {
        let ip_restricted = record.allowed_cidrs.as_ref().is_some_and(|c| !c.is_empty());
        let limit = record
            .rate_limit_policy
            .filter(|_| call.count && call.rt.rate_limit_enabled)
            .and_then(|p| {
                let rate = Rate::new(
                    u64::try_from(p.quota).ok()?,
                    Duration::from_secs(u64::try_from(p.window_secs).ok()?),
                )?;
                Some((p, rate))
            });
        let mut rate_limit = None;
        let mut metering = Metering::default();
        let result = match record.status_at(call.now) {
            KeyStatus::Revoked => Err(fail(VerifyErrorCode::Revoked, "API key has been revoked")),
            KeyStatus::Expired => Err(fail(VerifyErrorCode::Expired, "API key has expired")),
            KeyStatus::Active => match &record.allowed_cidrs {
                Some(c) if !c.is_empty() && !ip_check(c, call.req.client_ip) => Err(fail(
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
                        // Last: a request refused for any other reason spends nothing.
                        let (metered, paid) = self.meter(call, &record).await;
                        metering = metered;
                        paid.map(|()| {
                            self.touch(&record, call.now);
                            verified(record)
                        })
                    }
                },
            },
        };
        VerifyOutcome {
            result,
            cache,
            ip_restricted,
            rate_limited_key: limit.is_some(),
            rate_limit,
            metering,
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
        let span = cache_span("rate_limit.check", self.limiter.kind());
        match self.limiter.check(&key, rate).instrument(span).await {
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

    /// A JWT (`jwt`) or macaroon: signature, then claims; no cache, no storage.
    fn verify_derived(&self, call: &Call<'_>, jwt: bool) -> VerifyOutcome {
        let rt = call.rt;
        let parsed = if jwt {
            rt.jwks.verify(&call.req.credential)
        } else {
            talos_credentials::macaroon::verify_macaroon(
                &rt.keyring,
                &call.req.credential,
                &rt.macaroon_prefixes,
            )
        };
        let claims = match parsed {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(reason = %e, "derived token rejected");
                return VerifyOutcome::failed(
                    fail(
                        VerifyErrorCode::SignatureInvalid,
                        "token signature is invalid",
                    ),
                    CacheStatus::Skip,
                );
            }
        };
        let result = check_claims(rt, &claims, call.nid, call.req.client_ip, call.now)
            .map(|()| derived_identity(&claims));
        VerifyOutcome {
            result,
            cache: CacheStatus::Skip,
            ip_restricted: !claims.acl.is_empty(),
            rate_limited_key: false,
            rate_limit: None,
            metering: Metering::default(),
        }
    }
}

/// The identity of a stored key that verified.
fn verified(record: CachedKey) -> Verified {
    Verified {
        key_id: record.key_id.clone(),
        actor_id: record.actor_id.clone(),
        scopes: record.scopes.clone(),
        metadata: record.metadata.clone(),
        expire_time: record.expire_time,
        visibility: record.visibility,
        rate_limit_policy: record.rate_limit_policy,
        record: Some(record),
    }
}

/// The identity a derived token carries: its parent's, with the custom claims over the metadata.
fn derived_identity(claims: &DerivedClaims) -> Verified {
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
