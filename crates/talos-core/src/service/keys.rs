//! Issue, import, get, update, rotate, revoke and delete.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use talos_credentials::{imported, issued, route};
use talos_storage::{
    BatchItemOutcome, ConflictKind, ImportedHash, InsertOutcome, KeyKind, KeyPatch, KeyRecord,
    Quota, Revocation, RevocationReason, StorageError, StoredStatus, Visibility,
};
use uuid::Uuid;

use super::Service;
use super::requests::*;
use crate::audit;
use crate::domain_metrics::domain;
use crate::error::{CoreError, Result};
use crate::runtime::Runtime;

/// A newly issued key: the row and its secret (empty when an idempotent retry returned the
/// existing key: the secret is never stored, so it cannot be shown twice).
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: KeyRecord,
    pub secret: String,
}

/// A rotation: the new key with its secret, and the old key, now revoked.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub new: IssuedKey,
    pub old: KeyRecord,
}

/// One item of a batch import: the imported key, or why this item was refused.
#[derive(Debug)]
pub struct BatchItem {
    pub index: usize,
    pub result: Result<KeyRecord>,
}

/// What kind of key an id names: UUIDs are issued keys, 64 hex characters imported ones.
pub fn kind_of_key_id(key_id: &str) -> Option<KeyKind> {
    if imported::is_imported_key_id(key_id) {
        Some(KeyKind::Imported)
    } else if Uuid::try_parse(key_id).is_ok() {
        Some(KeyKind::Issued)
    } else {
        None
    }
}

fn not_found(kind: KeyKind) -> CoreError {
    CoreError::not_found(kind)
}

/// Maps storage errors for a key addressed by id: "not found" names the kind.
fn by_id(kind: KeyKind) -> impl Fn(StorageError) -> CoreError {
    move |e| match e {
        StorageError::NotFound => not_found(kind),
        other => other.into(),
    }
}

impl Runtime {
    /// The TTL of a new key: the request's, else the default; positive and within `max_ttl`.
    pub(crate) fn key_ttl(&self, ttl: Option<&str>) -> Result<Duration> {
        let ttl = match ttl.filter(|t| !t.is_empty()) {
            Some(text) => talos_credentials::duration::parse_duration(text)
                .map_err(|e| CoreError::bad(format!("ttl: {e}")))?,
            None => self.default_ttl.ok_or_else(|| {
                CoreError::bad(
                    "ttl must be greater than 0; non-expiring API keys are not supported",
                )
            })?,
        };
        check_ttl_floor(ttl)?;
        if ttl > self.max_ttl {
            return Err(CoreError::bad(format!(
                "ttl {} exceeds the project maximum of {}",
                talos_credentials::duration::format_seconds(ttl),
                talos_credentials::duration::format_seconds(self.max_ttl)
            )));
        }
        Ok(ttl)
    }

    fn prefix_for(&self, v: Visibility) -> Result<&str> {
        match v {
            Visibility::Public => self.public_prefix.as_deref().ok_or_else(|| {
                CoreError::bad(
                    "visibility PUBLIC requires credentials.api_keys.prefix.public_current",
                )
            }),
            _ => Ok(&self.prefix),
        }
    }
}

/// The shortest TTL accepted for keys, imports and derived tokens (decisions.md "Quota and TTL
/// floor"): anything shorter would hand out a credential that is expired on arrival.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(1);

pub(crate) fn check_ttl_floor(ttl: Duration) -> Result<()> {
    if ttl.is_zero() {
        Err(CoreError::bad(
            "ttl must be greater than 0; non-expiring API keys are not supported",
        ))
    } else if ttl < MIN_TTL {
        Err(CoreError::bad("ttl must be at least 1s"))
    } else {
        Ok(())
    }
}

pub(crate) fn add_ttl(now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| CoreError::bad("ttl is too large"))
}

fn new_record(
    nid: Uuid,
    kind: KeyKind,
    key_id: String,
    spec: &KeySpec,
    now: DateTime<Utc>,
    expire: DateTime<Utc>,
) -> Result<KeyRecord> {
    Ok(KeyRecord {
        nid,
        kind,
        key_id,
        name: spec.name.clone(),
        actor_id: spec.actor_id.clone(),
        scopes: spec.scopes.clone(),
        metadata: spec.metadata.clone(),
        status: StoredStatus::Active,
        visibility: spec.visibility.unwrap_or(Visibility::Unspecified),
        create_time: now,
        update_time: now,
        expire_time: Some(expire),
        last_used_time: None,
        rate_limit_policy: spec
            .rate_limit_policy
            .as_ref()
            .map(RateLimitInput::to_policy)
            .transpose()?,
        allowed_cidrs: cidrs_or_none(spec.allowed_cidrs.clone()),
        revocation_reason: None,
        revocation_description: None,
        request_id: spec.request_id.clone().filter(|r| !r.is_empty()),
        imported: None,
        credits: spec.credits.map(|c| c.to_credits(now)).transpose()?,
        actor_has_quota: None,
    })
}

impl Service {
    /// Inserts a key, within `quota.api_keys_max` when one is set: the storage counts and inserts
    /// atomically per network, so concurrent requests cannot overshoot the quota.
    async fn insert_within_quota(
        &self,
        rt: &Runtime,
        rec: &KeyRecord,
        now: DateTime<Utc>,
    ) -> std::result::Result<InsertOutcome, StorageError> {
        if rt.quota_max == 0 {
            return self.store.insert_key(rec).await;
        }
        let quota = Quota {
            max: rt.quota_max,
            now,
        };
        self.store.insert_key_within(rec, &quota).await
    }

    fn mint(rt: &Runtime, visibility: Visibility, now: DateTime<Utc>) -> Result<(Uuid, String)> {
        let entry = rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
        let key_id = Uuid::new_v4();
        let secret = issued::generate(entry, rt.prefix_for(visibility)?, now.timestamp(), key_id);
        Ok((key_id, secret))
    }

    #[tracing::instrument(level = "debug", name = "talos.issue", skip_all, fields(network = %nid))]
    pub async fn issue(&self, nid: Uuid, spec: KeySpec) -> Result<IssuedKey> {
        let rt = self.runtime(nid);
        rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
        check_spec(&spec)?;
        let now = self.now();
        let ttl = rt.key_ttl(spec.ttl.as_deref())?;
        let visibility = spec.visibility.unwrap_or(Visibility::Unspecified);
        let (key_id, secret) = Self::mint(&rt, visibility, now)?;
        let rec = new_record(
            nid,
            KeyKind::Issued,
            key_id.to_string(),
            &spec,
            now,
            add_ttl(now, ttl)?,
        )?;
        match self.insert_within_quota(&rt, &rec, now).await {
            Ok(InsertOutcome::Inserted(key)) => {
                audit::key_event(audit::names::ISSUED_CREATED, &key);
                domain().key_created(1);
                Ok(IssuedKey { key, secret })
            }
            Ok(InsertOutcome::Existing(key)) => Ok(IssuedKey {
                key,
                secret: String::new(),
            }),
            Err(StorageError::Conflict(_)) => Err(CoreError::KeyExists),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(level = "debug", name = "talos.get_key", skip_all, fields(network = %nid))]
    pub async fn get_key(&self, nid: Uuid, kind: KeyKind, key_id: &str) -> Result<KeyRecord> {
        if kind_of_key_id(key_id) != Some(kind) {
            return Err(not_found(kind));
        }
        self.store
            .get_key(nid, kind, key_id)
            .await
            .map_err(by_id(kind))?
            .ok_or_else(|| not_found(kind))
    }

    #[tracing::instrument(level = "debug", name = "talos.update_key", skip_all, fields(network = %nid))]
    pub async fn update_key(
        &self,
        nid: Uuid,
        kind: KeyKind,
        key_id: &str,
        req: UpdateRequest,
    ) -> Result<KeyRecord> {
        if kind_of_key_id(key_id) != Some(kind) {
            return Err(not_found(kind));
        }
        let mut patch = KeyPatch::default();
        let in_mask = |f: UpdateField| req.mask.as_ref().map(|m| m.contains(&f));
        // With a mask: masked fields are written, empty values clear. Without: non-empty fields apply.
        let apply =
            |f: UpdateField, present_non_empty: bool| in_mask(f).unwrap_or(present_non_empty);
        if apply(
            UpdateField::Name,
            req.name.as_deref().is_some_and(|n| !n.is_empty()),
        ) {
            let name = req.name.clone().unwrap_or_default();
            check_len("name", &name, 1, 255)?;
            patch.name = Some(name);
        }
        if apply(
            UpdateField::Scopes,
            req.scopes.as_ref().is_some_and(|s| !s.is_empty()),
        ) {
            let scopes = req.scopes.clone().unwrap_or_default();
            check_scopes(&scopes)?;
            patch.scopes = Some(scopes);
        }
        if apply(
            UpdateField::Metadata,
            req.metadata.as_ref().is_some_and(|m| !m.is_empty()),
        ) {
            let m = req.metadata.clone().unwrap_or_default();
            check_metadata(&m)?;
            patch.metadata = Some(m);
        }
        if apply(
            UpdateField::RateLimitPolicy,
            req.rate_limit_policy.is_some(),
        ) {
            patch.rate_limit_policy = Some(
                req.rate_limit_policy
                    .as_ref()
                    .map(RateLimitInput::to_policy)
                    .transpose()?,
            );
        }
        if apply(
            UpdateField::IpRestriction,
            req.allowed_cidrs.as_ref().is_some_and(|c| !c.is_empty()),
        ) {
            let c = req.allowed_cidrs.clone().unwrap_or_default();
            check_cidrs(&c)?;
            patch.allowed_cidrs = Some(cidrs_or_none(Some(c)));
        }
        if apply(UpdateField::Credits, req.credits.is_some()) {
            patch.credits = Some(req.credits.map(|c| c.to_credits(self.now())).transpose()?);
        }
        let rec = if patch.is_empty() {
            self.store
                .get_key(nid, kind, key_id)
                .await
                .and_then(|r| r.ok_or(StorageError::NotFound))
        } else {
            self.store
                .update_key(nid, kind, key_id, &patch, self.now())
                .await
        }
        .map_err(by_id(kind))?;
        self.evict(&rec).await;
        audit::key_event(
            if kind == KeyKind::Issued {
                audit::names::ISSUED_UPDATED
            } else {
                audit::names::IMPORTED_UPDATED
            },
            &rec,
        );
        Ok(rec)
    }

    #[tracing::instrument(level = "debug", name = "talos.rotate", skip_all, fields(network = %nid))]
    pub async fn rotate(&self, nid: Uuid, key_id: &str, req: RotateRequest) -> Result<Rotated> {
        let rt = self.runtime(nid);
        rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
        if kind_of_key_id(key_id) != Some(KeyKind::Issued) {
            return Err(not_found(KeyKind::Issued));
        }
        let now = self.now();
        let old = self
            .store
            .get_key(nid, KeyKind::Issued, key_id)
            .await
            .map_err(by_id(KeyKind::Issued))?
            .ok_or_else(|| not_found(KeyKind::Issued))?;
        if old.status_at(now) != talos_storage::KeyStatus::Active {
            return Err(CoreError::NotActive);
        }
        let spec = KeySpec {
            name: req.name.unwrap_or_else(|| old.name.clone()),
            actor_id: old.actor_id.clone(),
            scopes: req.scopes.unwrap_or_else(|| old.scopes.clone()),
            metadata: req.metadata.unwrap_or_else(|| old.metadata.clone()),
            ttl: None,
            rate_limit_policy: None,
            allowed_cidrs: req.allowed_cidrs.or_else(|| old.allowed_cidrs.clone()),
            visibility: Some(req.visibility.unwrap_or(old.visibility)),
            request_id: None,
            // Carried over by the storage, as the old key's balance is at the rotation.
            credits: None,
        };
        check_spec(&spec)?;
        let visibility = spec.visibility.unwrap_or(Visibility::Unspecified);
        let (new_id, secret) = Self::mint(&rt, visibility, now)?;
        let expire = old.expire_time.unwrap_or(now);
        let mut rec = new_record(nid, KeyKind::Issued, new_id.to_string(), &spec, now, expire)?;
        rec.rate_limit_policy = match req.rate_limit_policy {
            Some(p) => p.as_ref().map(RateLimitInput::to_policy).transpose()?,
            None => old.rate_limit_policy,
        };
        let revocation = Revocation {
            reason: RevocationReason::Superseded,
            description: Some("rotated: replaced by new key".into()),
            at: now,
        };
        let (new, old) = self
            .store
            .rotate_key(nid, key_id, &rec, &revocation)
            .await
            .map_err(by_id(KeyKind::Issued))?;
        self.evict(&old).await;
        domain().key_rotated();
        audit::key_event(audit::names::ISSUED_ROTATED, &old);
        audit::key_event(audit::names::ISSUED_CREATED, &new);
        Ok(Rotated {
            new: IssuedKey { key: new, secret },
            old,
        })
    }

    /// Admin revoke, for either kind (the id's shape says which).
    #[tracing::instrument(level = "debug", name = "talos.revoke", skip_all, fields(network = %nid))]
    pub async fn revoke(
        &self,
        nid: Uuid,
        kind: Option<KeyKind>,
        key_id: &str,
        req: RevokeRequest,
    ) -> Result<KeyRecord> {
        let detected = kind_of_key_id(key_id);
        let kind = match (kind, detected) {
            (Some(k), Some(d)) if k == d => k,
            (None, Some(d)) => d,
            (k, _) => return Err(not_found(k.unwrap_or(KeyKind::Issued))),
        };
        let text = req.reason_text.filter(|t| !t.is_empty());
        if text.is_some() && req.reason != RevocationReason::PrivilegeWithdrawn {
            return Err(CoreError::ReasonTextNotAllowed);
        }
        if let Some(t) = &text {
            check_len("reason_text", t, 0, 1024)?;
        }
        let revocation = Revocation {
            reason: req.reason,
            description: text,
            at: self.now(),
        };
        let rec = self
            .store
            .revoke_key(nid, kind, key_id, &revocation)
            .await
            .map_err(by_id(kind))?;
        self.evict(&rec).await;
        domain().key_revoked(revocation.reason);
        audit::key_event(revoked_event(kind), &rec);
        Ok(rec)
    }

    /// Revocation by proof of possession: the caller presents the key itself.
    #[tracing::instrument(level = "debug", name = "talos.self_revoke", skip_all, fields(network = %nid))]
    pub async fn self_revoke(
        &self,
        nid: Uuid,
        credential: &str,
        reason: RevocationReason,
    ) -> Result<()> {
        if credential.is_empty() {
            return Err(CoreError::CredentialRequired);
        }
        let rt = self.runtime(nid);
        rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
        if reason == RevocationReason::PrivilegeWithdrawn {
            return Err(CoreError::ReasonReserved);
        }
        let rec = self.resolve_credential(&rt, nid, credential).await?;
        let revocation = Revocation {
            reason,
            description: None,
            at: self.now(),
        };
        match self
            .store
            .revoke_key(nid, rec.kind, &rec.key_id, &revocation)
            .await
        {
            Ok(r) => {
                self.evict(&r).await;
                domain().key_revoked(reason);
                audit::key_event(revoked_event(r.kind), &r);
            }
            Err(StorageError::Conflict(ConflictKind::AlreadyRevoked)) => {}
            Err(e) => return Err(by_id(rec.kind)(e)),
        }
        Ok(())
    }

    /// Finds the stored key a raw credential names (checksum first: forgeries cost no I/O).
    pub(crate) async fn resolve_credential(
        &self,
        rt: &Runtime,
        nid: Uuid,
        credential: &str,
    ) -> Result<KeyRecord> {
        check_len("credential", credential, 1, 4096)?;
        match route::classify(credential, &rt.allowed_prefixes, &rt.macaroon_prefixes) {
            route::Credential::Jwt(_) | route::Credential::Macaroon(_) => {
                Err(CoreError::DerivedTokenNotRevocable)
            }
            route::Credential::MalformedIssued(_) => Err(not_found(KeyKind::Issued)),
            route::Credential::Issued(parsed) => {
                if issued::verify_checksum(&parsed, &rt.keyring).is_none() {
                    return Err(not_found(KeyKind::Issued));
                }
                self.store
                    .get_key(nid, KeyKind::Issued, &parsed.key_id().to_string())
                    .await
                    .map_err(by_id(KeyKind::Issued))?
                    .ok_or_else(|| not_found(KeyKind::Issued))
            }
            route::Credential::Imported(_) => {
                let hashes: Vec<[u8; 32]> = rt
                    .keyring
                    .iter()
                    .map(|e| imported::hash(e, nid, credential.as_bytes()))
                    .collect();
                self.store
                    .find_imported_by_hashes(nid, &hashes)
                    .await?
                    .ok_or(not_found(KeyKind::Issued))
            }
        }
    }

    #[tracing::instrument(level = "debug", name = "talos.delete_imported", skip_all, fields(network = %nid))]
    pub async fn delete_imported(&self, nid: Uuid, key_id: &str) -> Result<()> {
        if kind_of_key_id(key_id) != Some(KeyKind::Imported) {
            return Err(not_found(KeyKind::Imported));
        }
        // The row as deleted: its hash is the one a concurrent re-hash may have just written.
        let rec = self
            .store
            .delete_key(nid, KeyKind::Imported, key_id)
            .await
            .map_err(by_id(KeyKind::Imported))?;
        self.evict(&rec).await;
        audit::key_event(audit::names::IMPORTED_DELETED, &rec);
        Ok(())
    }

    /// Refuses raw keys that have the shape of Talos' own credentials.
    fn check_raw_key(rt: &Runtime, raw: &str) -> Result<()> {
        check_len("raw_key", raw, 1, 4096)?;
        match route::classify(raw, &rt.allowed_prefixes, &rt.macaroon_prefixes) {
            route::Credential::Jwt(_) | route::Credential::Macaroon(_) => {
                Err(CoreError::RawKeyIsDerivedToken)
            }
            route::Credential::Issued(_) | route::Credential::MalformedIssued(_) => {
                Err(CoreError::RawKeyIsIssuedKey)
            }
            route::Credential::Imported(_) if route::looks_issued(raw) => {
                Err(CoreError::RawKeyIsIssuedKey)
            }
            route::Credential::Imported(_) => Ok(()),
        }
    }

    fn imported_record(
        rt: &Runtime,
        nid: Uuid,
        req: &ImportRequest,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord> {
        let entry = rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
        Self::check_raw_key(rt, &req.raw_key)?;
        check_spec(&req.spec)?;
        let ttl = rt.key_ttl(req.spec.ttl.as_deref())?;
        let mut rec = new_record(
            nid,
            KeyKind::Imported,
            imported::new_key_id(),
            &req.spec,
            now,
            add_ttl(now, ttl)?,
        )?;
        rec.imported = Some(ImportedHash {
            hash: imported::hash(entry, nid, req.raw_key.as_bytes()),
            secret_id: entry.id().to_string(),
        });
        Ok(rec)
    }

    /// Whether the raw key is already stored under a retired secret (the unique index only sees
    /// hashes under the current one).
    async fn imported_under_retired(&self, rt: &Runtime, nid: Uuid, raw: &str) -> Result<bool> {
        let retired: Vec<[u8; 32]> = rt
            .keyring
            .iter()
            .skip(1)
            .map(|e| imported::hash(e, nid, raw.as_bytes()))
            .collect();
        if retired.is_empty() {
            return Ok(false);
        }
        Ok(self
            .store
            .find_imported_by_hashes(nid, &retired)
            .await?
            .is_some())
    }

    #[tracing::instrument(level = "debug", name = "talos.import", skip_all, fields(network = %nid))]
    pub async fn import(&self, nid: Uuid, req: ImportRequest) -> Result<KeyRecord> {
        let result = self.import_one(nid, req).await;
        if let Err(e) = &result {
            self.failures.import_failed(nid, &e.to_string());
        }
        result
    }

    async fn import_one(&self, nid: Uuid, req: ImportRequest) -> Result<KeyRecord> {
        let rt = self.runtime(nid);
        let now = self.now();
        let rec = Self::imported_record(&rt, nid, &req, now)?;
        if self.imported_under_retired(&rt, nid, &req.raw_key).await? {
            return Err(CoreError::AlreadyImported);
        }
        match self.insert_within_quota(&rt, &rec, now).await {
            Ok(InsertOutcome::Inserted(k)) => {
                audit::key_event(audit::names::IMPORTED_CREATED, &k);
                domain().key_created(1);
                Ok(k)
            }
            Ok(InsertOutcome::Existing(k)) => {
                audit::key_event(audit::names::IMPORTED_CREATED, &k);
                Ok(k)
            }
            Err(StorageError::Conflict(_)) => Err(CoreError::AlreadyImported),
            Err(e) => Err(e.into()),
        }
    }

    /// Imports up to 1000 keys; every item gets its own outcome.
    #[tracing::instrument(level = "debug", name = "talos.batch_import", skip_all, fields(network = %nid))]
    pub async fn batch_import(
        &self,
        nid: Uuid,
        items: Vec<ImportRequest>,
    ) -> Result<Vec<BatchItem>> {
        if items.is_empty() {
            return Err(CoreError::bad("keys must contain at least one item"));
        }
        if items.len() > 1000 {
            return Err(CoreError::bad("maximum 1000 keys per batch"));
        }
        let rt = self.runtime(nid);
        rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
        let now = self.now();
        let mut results: Vec<Option<BatchItem>> = (0..items.len()).map(|_| None).collect();
        let mut seen: HashMap<[u8; 32], usize> = HashMap::new();
        let mut to_insert = Vec::new();
        for (index, req) in items.iter().enumerate() {
            let outcome = match Self::imported_record(&rt, nid, req, now) {
                Err(e) => Err(e),
                Ok(rec) => {
                    let hash = rec.imported.as_ref().map(|h| h.hash).unwrap_or_default();
                    if let Some(&first) = seen.get(&hash) {
                        Err(CoreError::DuplicateInBatch { first })
                    } else if self.imported_under_retired(&rt, nid, &req.raw_key).await? {
                        Err(CoreError::AlreadyImported)
                    } else {
                        seen.insert(hash, index);
                        to_insert.push((index, rec));
                        continue;
                    }
                }
            };
            results[index] = Some(BatchItem {
                index,
                result: outcome,
            });
        }
        if !to_insert.is_empty() {
            let recs: Vec<KeyRecord> = to_insert.iter().map(|(_, r)| r.clone()).collect();
            // Items past the quota's room (counted atomically with the insert) are refused.
            let outcomes = if rt.quota_max == 0 {
                self.store.insert_keys_batch(&recs).await?
            } else {
                let quota = Quota {
                    max: rt.quota_max,
                    now,
                };
                self.store.insert_keys_batch_within(&recs, &quota).await?
            };
            for ((index, _), outcome) in to_insert.into_iter().zip(outcomes) {
                let result = match outcome {
                    BatchItemOutcome::Inserted(k) => {
                        audit::key_event(audit::names::IMPORTED_CREATED, &k);
                        domain().key_created(1);
                        Ok(k)
                    }
                    BatchItemOutcome::Duplicate => Err(CoreError::AlreadyImported),
                    BatchItemOutcome::QuotaExceeded => Err(CoreError::QuotaExceeded {
                        limit: rt.quota_max,
                        current: None,
                    }),
                };
                results[index] = Some(BatchItem { index, result });
            }
        }
        Ok(results.into_iter().flatten().collect())
    }
}

fn revoked_event(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Issued => audit::names::ISSUED_REVOKED,
        KeyKind::Imported => audit::names::IMPORTED_REVOKED,
    }
}
