//! Domain types that cross the storage interface. No diesel type appears here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Which family a key belongs to. Issued keys have a UUID `key_id`; imported keys a 64-hex one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyKind {
    Issued,
    Imported,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Issued => "issued",
            KeyKind::Imported => "imported",
        }
    }
}

/// The status as stored. `Expired` is never stored: it is computed at read time from `expire_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredStatus {
    Active,
    Revoked,
}

/// The status a reader sees: stored status with expiry applied (`Revoked` wins over `Expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Revoked,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Visibility {
    Unspecified,
    Secret,
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    pub fn to_i16(self) -> i16 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 2,
            RevocationReason::Superseded => 3,
            RevocationReason::PrivilegeWithdrawn => 4,
        }
    }
    pub fn from_i16(v: i16) -> Self {
        match v {
            1 => RevocationReason::KeyCompromise,
            2 => RevocationReason::AffiliationChanged,
            3 => RevocationReason::Superseded,
            4 => RevocationReason::PrivilegeWithdrawn,
            _ => RevocationReason::Unspecified,
        }
    }
}

/// `{quota, window}`; the window is stored in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitPolicy {
    pub quota: i64,
    pub window_secs: i64,
}

/// Where an imported key's hash came from: the hash bytes and the id of the secret that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedHash {
    pub hash: [u8; 32],
    pub secret_id: String,
}

/// One API key row, issued or imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub nid: Uuid,
    pub kind: KeyKind,
    pub key_id: String,
    pub name: String,
    pub actor_id: String,
    pub scopes: Vec<String>,
    pub metadata: Map<String, Value>,
    pub status: StoredStatus,
    pub visibility: Visibility,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub expire_time: Option<DateTime<Utc>>,
    pub last_used_time: Option<DateTime<Utc>>,
    pub rate_limit_policy: Option<RateLimitPolicy>,
    /// `None` = no restriction; `Some(vec![])` is stored as no restriction too.
    pub allowed_cidrs: Option<Vec<String>>,
    pub revocation_reason: Option<RevocationReason>,
    pub revocation_description: Option<String>,
    pub request_id: Option<String>,
    /// Set for imported keys only.
    pub imported: Option<ImportedHash>,
}

impl KeyRecord {
    /// The status a reader sees at `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> KeyStatus {
        match self.status {
            StoredStatus::Revoked => KeyStatus::Revoked,
            StoredStatus::Active => match self.expire_time {
                Some(exp) if exp <= now => KeyStatus::Expired,
                _ => KeyStatus::Active,
            },
        }
    }
}

/// Filters and cursor for list queries. Results are ordered by `key_id` descending.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub actor_id: Option<String>,
    /// Filter on the computed status at `now`.
    pub status: Option<KeyStatus>,
    /// Only keys with `key_id < after` (keyset pagination).
    pub after: Option<String>,
    /// Maximum rows to return (callers ask for page_size + 1 to learn whether more exist).
    pub limit: usize,
    pub now: DateTime<Utc>,
}

/// A partial update: `Some` fields are written (an empty value clears), `None` fields are left alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
    pub rate_limit_policy: Option<Option<RateLimitPolicy>>,
    pub allowed_cidrs: Option<Option<Vec<String>>>,
}

impl KeyPatch {
    pub fn is_empty(&self) -> bool {
        *self == KeyPatch::default()
    }
}

/// A revocation to apply.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub reason: RevocationReason,
    pub description: Option<String>,
    pub at: DateTime<Utc>,
}

/// Result of an insert that may be idempotent on `request_id`.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    Inserted(KeyRecord),
    /// A row with the same `(nid, kind, request_id)` already existed; it is returned unchanged.
    Existing(KeyRecord),
}

/// Per-item result of a batch import.
// Most items of a batch are `Inserted`, so boxing the record would only add an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BatchItemOutcome {
    Inserted(KeyRecord),
    /// The hash (or key id / request id) already exists.
    Duplicate,
    /// Not inserted: the network's quota was full (only from `insert_keys_batch_within`).
    QuotaExceeded,
}

/// A cap on a network's keys that are stored-active and unexpired at `now` (both kinds), checked
/// atomically with an insert: of concurrent inserts into one network, no more succeed than fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max: u64,
    pub now: DateTime<Utc>,
}

/// A cache eviction recorded because the shared cache could not be reached when its mutation
/// committed (`Store::add_invalidation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub id: i64,
    pub nid: Uuid,
    /// The cache entry's key within the network (key id, or `h:<hash>` for imported keys).
    pub cache_key: String,
}
