//! Domain types that cross the storage interface. No diesel type appears here.

use chrono::{DateTime, Datelike, TimeZone, Utc};
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
    /// Usage credits; `None` = unlimited. (Defaults when absent, so cache entries written before
    /// metering existed still decode.)
    #[serde(default)]
    pub credits: Option<Credits>,
    /// Whether the key's actor had a balance quota when this row was read. Only the lookups
    /// verification reads through (`get_key`, `find_imported_by_hashes`) look; every other
    /// statement's row says `None` (unknown), which verification treats like `Some(true)`.
    #[serde(default)]
    pub actor_has_quota: Option<bool>,
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
    /// `Some(None)` removes the credits (unlimited); `Some(Some(c))` replaces them.
    pub credits: Option<Option<Credits>>,
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

/// One `last_used_time` write of a batch (`Store::touch_keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub nid: Uuid,
    pub kind: KeyKind,
    pub key_id: String,
    pub at: DateTime<Utc>,
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

/// When a key's credits are refilled: at 00:00 UTC of every day, or of the first day of every month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefillInterval {
    Daily,
    Monthly,
}

impl RefillInterval {
    pub fn to_i16(self) -> i16 {
        match self {
            RefillInterval::Daily => 1,
            RefillInterval::Monthly => 2,
        }
    }

    pub fn from_i16(v: i16) -> Option<Self> {
        match v {
            1 => Some(RefillInterval::Daily),
            2 => Some(RefillInterval::Monthly),
            _ => None,
        }
    }

    /// The latest refill boundary at or before `now`.
    pub fn boundary(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let day = match self {
            RefillInterval::Daily => now.date_naive(),
            RefillInterval::Monthly => now.date_naive().with_day(1).unwrap_or(now.date_naive()),
        };
        Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
    }
}

/// A refill: the balance is reset to `amount` at each `interval` boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refill {
    pub amount: i64,
    pub interval: RefillInterval,
}

/// A key's usage credits (as Unkey's `remaining`): each verification spends its cost, and a
/// verification that cannot pay is refused. The stored balance is the truth; a cached copy is
/// only used to tell whether a key has credits at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credits {
    pub remaining: i64,
    pub refill: Option<Refill>,
    /// The refill boundary last applied, or when the credits were set: a boundary after it is due.
    pub refilled_at: DateTime<Utc>,
}

impl Credits {
    /// The refill a spend at `now` must apply first: the interval and its latest boundary, when
    /// that boundary is later than the last one applied.
    pub fn due_refill(&self, now: DateTime<Utc>) -> Option<(RefillInterval, DateTime<Utc>)> {
        let refill = self.refill?;
        let boundary = refill.interval.boundary(now);
        (boundary > self.refilled_at).then_some((refill.interval, boundary))
    }

    /// The balance at `now`, with a due refill applied.
    pub fn remaining_at(&self, now: DateTime<Utc>) -> i64 {
        match (self.refill, self.due_refill(now)) {
            (Some(r), Some(_)) => r.amount,
            _ => self.remaining,
        }
    }
}

/// What a credit spend found (`Store::spend_credits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditSpend {
    /// Paid; the balance after it.
    Spent { remaining: i64 },
    /// Not paid: the balance is below the cost (or zero). Nothing changed but a due refill.
    Insufficient { remaining: i64 },
    /// The key has no credits (they were removed since the caller read it): nothing to pay.
    Unmetered,
    /// The key is missing or revoked.
    Inactive,
}

/// An actor's metered balance. `quota_micros` > 0 turns enforcement on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorBalance {
    pub nid: Uuid,
    pub actor_id: String,
    pub quota_micros: i64,
    pub remaining_micros: i64,
    pub update_time: DateTime<Utc>,
}

/// One ingested usage event. `id` is assigned by the store (ignored on insert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub id: i64,
    pub nid: Uuid,
    pub actor_id: String,
    pub key_id: String,
    pub usage_type: String,
    pub usage_amount: i64,
    pub cost_micros: i64,
    pub model: String,
    /// Idempotency key: a second event with the same one (per network) is not recorded or debited.
    pub request_id: Option<String>,
    pub session_id: String,
    pub create_time: DateTime<Utc>,
}

/// What an ingestion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// False when the request id was taken already (nothing recorded or debited).
    pub accepted: bool,
    /// The actor's balance after the event (`None`: the actor has no balance).
    pub balance: Option<ActorBalance>,
}
