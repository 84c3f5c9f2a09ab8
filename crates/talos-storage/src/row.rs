//! The one diesel schema shared by both backends, and the only place rows turn into domain types.
//!
//! The column model is deliberately portable (TEXT, SMALLINT, BIGINT, BLOB/BYTEA only), so that one
//! `table!` and one set of queries serve PostgreSQL and SQLite alike.

use chrono::{DateTime, Utc};
use diesel::{AsChangeset, Insertable, Queryable, Selectable};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Result, StorageError};
use crate::model::{
    ActorBalance, Credits, ImportedHash, KeyKind, KeyPatch, KeyRecord, RateLimitPolicy, Refill,
    RefillInterval, RevocationReason, StoredStatus, UsageRecord, Visibility,
};

diesel::table! {
    api_keys (nid, key_id) {
        nid -> Text,
        key_id -> Text,
        kind -> Text,
        name -> Text,
        actor_id -> Text,
        scopes -> Text,
        metadata -> Text,
        status -> SmallInt,
        visibility -> SmallInt,
        create_time -> BigInt,
        update_time -> BigInt,
        expire_time -> Nullable<BigInt>,
        last_used_time -> Nullable<BigInt>,
        rate_limit_quota -> Nullable<BigInt>,
        rate_limit_window_secs -> Nullable<BigInt>,
        allowed_cidrs -> Nullable<Text>,
        revocation_reason -> Nullable<SmallInt>,
        revocation_description -> Nullable<Text>,
        request_id -> Nullable<Text>,
        hash -> Nullable<Binary>,
        hash_secret_id -> Nullable<Text>,
        credits_remaining -> Nullable<BigInt>,
        credits_refill_amount -> Nullable<BigInt>,
        credits_refill_interval -> Nullable<SmallInt>,
        credits_refilled_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    actor_balances (nid, actor_id) {
        nid -> Text,
        actor_id -> Text,
        quota_micros -> BigInt,
        remaining_micros -> BigInt,
        update_time -> BigInt,
    }
}

diesel::table! {
    usage_records (id) {
        id -> BigInt,
        nid -> Text,
        actor_id -> Text,
        key_id -> Text,
        usage_type -> Text,
        usage_amount -> BigInt,
        cost_micros -> BigInt,
        model -> Text,
        request_id -> Nullable<Text>,
        session_id -> Text,
        create_time -> BigInt,
    }
}

// Verification reads a key with its actor's quota (a left join), so that the cached row knows
// whether the actor is metered.
diesel::allow_tables_to_appear_in_same_query!(api_keys, actor_balances);

diesel::table! {
    cache_invalidations (id) {
        id -> BigInt,
        nid -> Text,
        cache_key -> Text,
        create_time -> BigInt,
    }
}

/// Stored status codes; they follow the API's `KeyStatus` numbering (ACTIVE 1, REVOKED 2).
pub(crate) const STATUS_ACTIVE: i16 = 1;
pub(crate) const STATUS_REVOKED: i16 = 2;

pub(crate) fn kind_str(kind: KeyKind) -> &'static str {
    kind.as_str()
}

/// The network id as stored: the hyphenated lowercase UUID.
pub(crate) fn nid_str(nid: Uuid) -> String {
    nid.hyphenated().to_string()
}

/// Times are stored as unix microseconds: portable across both backends and exactly the
/// precision PostgreSQL timestamps would have had. Sub-microsecond digits are dropped.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(v: i64, column: &str) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(column, "timestamp out of range"))
}

fn corrupt(column: &str, why: impl std::fmt::Display) -> StorageError {
    corrupt_in("api_keys", column, why)
}

fn corrupt_in(table: &str, column: &str, why: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("corrupt {table}.{column}: {why}"))
}

/// One `api_keys` row. `treat_none_as_default_value = false` makes `None` bind as NULL instead of
/// `DEFAULT`: SQLite has no `DEFAULT` in multi-row `VALUES`, and this keeps batch inserts one statement.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, treat_none_as_default_value = false)]
pub(crate) struct Row {
    pub nid: String,
    pub key_id: String,
    pub kind: String,
    pub name: String,
    pub actor_id: String,
    pub scopes: String,
    pub metadata: String,
    pub status: i16,
    pub visibility: i16,
    pub create_time: i64,
    pub update_time: i64,
    pub expire_time: Option<i64>,
    pub last_used_time: Option<i64>,
    pub rate_limit_quota: Option<i64>,
    pub rate_limit_window_secs: Option<i64>,
    pub allowed_cidrs: Option<String>,
    pub revocation_reason: Option<i16>,
    pub revocation_description: Option<String>,
    pub request_id: Option<String>,
    pub hash: Option<Vec<u8>>,
    pub hash_secret_id: Option<String>,
    pub credits_remaining: Option<i64>,
    pub credits_refill_amount: Option<i64>,
    pub credits_refill_interval: Option<i16>,
    pub credits_refilled_at: Option<i64>,
}

/// The four credit columns of a key, in table order.
pub(crate) type CreditColumns = (Option<i64>, Option<i64>, Option<i16>, Option<i64>);

pub(crate) fn credit_columns(c: Option<&Credits>) -> CreditColumns {
    match c {
        None => (None, None, None, None),
        Some(c) => (
            Some(c.remaining),
            c.refill.map(|r| r.amount),
            c.refill.map(|r| r.interval.to_i16()),
            Some(micros(c.refilled_at)),
        ),
    }
}

/// Credits from their columns; `None` when the key has none.
pub(crate) fn credits_from(cols: CreditColumns) -> Result<Option<Credits>> {
    let (remaining, amount, interval, refilled_at) = cols;
    let Some(remaining) = remaining else {
        return Ok(None);
    };
    let refill = match (amount, interval) {
        (Some(amount), Some(i)) => Some(Refill {
            amount,
            interval: RefillInterval::from_i16(i)
                .ok_or_else(|| corrupt("credits_refill_interval", i))?,
        }),
        _ => None,
    };
    Ok(Some(Credits {
        remaining,
        refill,
        refilled_at: from_micros(refilled_at.unwrap_or(0), "credits_refilled_at")?,
    }))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StorageError::Internal(format!("encode json: {e}")))
}

/// `Some(vec![])` means "no restriction" just like `None`; both are stored as NULL so reads are canonical.
fn cidrs_column(cidrs: &Option<Vec<String>>) -> Result<Option<String>> {
    match cidrs {
        Some(list) if !list.is_empty() => Ok(Some(to_json(list)?)),
        _ => Ok(None),
    }
}

fn visibility_code(v: Visibility) -> i16 {
    match v {
        Visibility::Unspecified => 0,
        Visibility::Secret => 1,
        Visibility::Public => 2,
    }
}

impl Row {
    pub(crate) fn from_record(k: &KeyRecord) -> Result<Row> {
        let credits = credit_columns(k.credits.as_ref());
        Ok(Row {
            nid: nid_str(k.nid),
            key_id: k.key_id.clone(),
            kind: kind_str(k.kind).to_owned(),
            name: k.name.clone(),
            actor_id: k.actor_id.clone(),
            scopes: to_json(&k.scopes)?,
            metadata: to_json(&k.metadata)?,
            status: match k.status {
                StoredStatus::Active => STATUS_ACTIVE,
                StoredStatus::Revoked => STATUS_REVOKED,
            },
            visibility: visibility_code(k.visibility),
            create_time: micros(k.create_time),
            update_time: micros(k.update_time),
            expire_time: k.expire_time.map(micros),
            last_used_time: k.last_used_time.map(micros),
            rate_limit_quota: k.rate_limit_policy.map(|p| p.quota),
            rate_limit_window_secs: k.rate_limit_policy.map(|p| p.window_secs),
            allowed_cidrs: cidrs_column(&k.allowed_cidrs)?,
            revocation_reason: k.revocation_reason.map(RevocationReason::to_i16),
            revocation_description: k.revocation_description.clone(),
            request_id: k.request_id.clone(),
            hash: k.imported.as_ref().map(|i| i.hash.to_vec()),
            hash_secret_id: k.imported.as_ref().map(|i| i.secret_id.clone()),
            credits_remaining: credits.0,
            credits_refill_amount: credits.1,
            credits_refill_interval: credits.2,
            credits_refilled_at: credits.3,
        })
    }

    /// Takes the credit columns of `from` (a rotation carries the old key's balance over).
    pub(crate) fn with_credits_of(mut self, from: &Row) -> Row {
        self.credits_remaining = from.credits_remaining;
        self.credits_refill_amount = from.credits_refill_amount;
        self.credits_refill_interval = from.credits_refill_interval;
        self.credits_refilled_at = from.credits_refilled_at;
        self
    }

    /// The record, with what the read knew about the actor's quota (see `KeyRecord`).
    pub(crate) fn into_record_with(self, actor_quota: Option<Option<i64>>) -> Result<KeyRecord> {
        let mut rec = self.into_record()?;
        rec.actor_has_quota = actor_quota.map(|q| q.is_some_and(|q| q > 0));
        Ok(rec)
    }

    pub(crate) fn into_record(self) -> Result<KeyRecord> {
        let credits = credits_from((
            self.credits_remaining,
            self.credits_refill_amount,
            self.credits_refill_interval,
            self.credits_refilled_at,
        ))?;
        let nid = Uuid::parse_str(&self.nid).map_err(|e| corrupt("nid", e))?;
        let kind = match self.kind.as_str() {
            "issued" => KeyKind::Issued,
            "imported" => KeyKind::Imported,
            other => return Err(corrupt("kind", other)),
        };
        let status = match self.status {
            STATUS_ACTIVE => StoredStatus::Active,
            STATUS_REVOKED => StoredStatus::Revoked,
            other => return Err(corrupt("status", other)),
        };
        let visibility = match self.visibility {
            0 => Visibility::Unspecified,
            1 => Visibility::Secret,
            2 => Visibility::Public,
            other => return Err(corrupt("visibility", other)),
        };
        let scopes: Vec<String> =
            serde_json::from_str(&self.scopes).map_err(|e| corrupt("scopes", e))?;
        let metadata: Map<String, Value> =
            serde_json::from_str(&self.metadata).map_err(|e| corrupt("metadata", e))?;
        let allowed_cidrs = match self.allowed_cidrs {
            Some(s) => Some(
                serde_json::from_str::<Vec<String>>(&s).map_err(|e| corrupt("allowed_cidrs", e))?,
            ),
            None => None,
        };
        let rate_limit_policy = match (self.rate_limit_quota, self.rate_limit_window_secs) {
            (Some(quota), Some(window_secs)) => Some(RateLimitPolicy { quota, window_secs }),
            _ => None,
        };
        let imported = match self.hash {
            Some(bytes) => {
                let hash: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| corrupt("hash", "not 32 bytes"))?;
                Some(ImportedHash {
                    hash,
                    secret_id: self.hash_secret_id.unwrap_or_default(),
                })
            }
            None => None,
        };
        Ok(KeyRecord {
            nid,
            kind,
            key_id: self.key_id,
            name: self.name,
            actor_id: self.actor_id,
            scopes,
            metadata,
            status,
            visibility,
            create_time: from_micros(self.create_time, "create_time")?,
            update_time: from_micros(self.update_time, "update_time")?,
            expire_time: self
                .expire_time
                .map(|v| from_micros(v, "expire_time"))
                .transpose()?,
            last_used_time: self
                .last_used_time
                .map(|v| from_micros(v, "last_used_time"))
                .transpose()?,
            rate_limit_policy,
            allowed_cidrs,
            revocation_reason: self.revocation_reason.map(RevocationReason::from_i16),
            revocation_description: self.revocation_description,
            request_id: self.request_id,
            imported,
            credits,
            actor_has_quota: None,
        })
    }
}

/// The columns a `KeyPatch` may touch. `None` fields are skipped by diesel; `Some(None)` writes NULL.
/// `update_time` is always set, so the changeset is never empty (an empty one is a diesel error).
#[derive(Debug, AsChangeset)]
#[diesel(table_name = api_keys)]
pub(crate) struct PatchRow {
    pub name: Option<String>,
    pub scopes: Option<String>,
    pub metadata: Option<String>,
    pub rate_limit_quota: Option<Option<i64>>,
    pub rate_limit_window_secs: Option<Option<i64>>,
    pub allowed_cidrs: Option<Option<String>>,
    pub credits_remaining: Option<Option<i64>>,
    pub credits_refill_amount: Option<Option<i64>>,
    pub credits_refill_interval: Option<Option<i16>>,
    pub credits_refilled_at: Option<Option<i64>>,
    pub update_time: i64,
}

impl PatchRow {
    pub(crate) fn new(p: &KeyPatch, now: DateTime<Utc>) -> Result<PatchRow> {
        let credits = p.credits.as_ref().map(|c| credit_columns(c.as_ref()));
        Ok(PatchRow {
            name: p.name.clone(),
            scopes: p.scopes.as_ref().map(to_json).transpose()?,
            metadata: p.metadata.as_ref().map(to_json).transpose()?,
            rate_limit_quota: p.rate_limit_policy.map(|rl| rl.map(|r| r.quota)),
            rate_limit_window_secs: p.rate_limit_policy.map(|rl| rl.map(|r| r.window_secs)),
            allowed_cidrs: p.allowed_cidrs.as_ref().map(cidrs_column).transpose()?,
            credits_remaining: credits.map(|c| c.0),
            credits_refill_amount: credits.map(|c| c.1),
            credits_refill_interval: credits.map(|c| c.2),
            credits_refilled_at: credits.map(|c| c.3),
            update_time: micros(now),
        })
    }
}

/// One `actor_balances` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = actor_balances)]
pub(crate) struct BalanceRow {
    pub nid: String,
    pub actor_id: String,
    pub quota_micros: i64,
    pub remaining_micros: i64,
    pub update_time: i64,
}

impl BalanceRow {
    pub(crate) fn into_balance(self) -> Result<ActorBalance> {
        Ok(ActorBalance {
            nid: Uuid::parse_str(&self.nid).map_err(|e| corrupt_in("actor_balances", "nid", e))?,
            actor_id: self.actor_id,
            quota_micros: self.quota_micros,
            remaining_micros: self.remaining_micros,
            update_time: DateTime::from_timestamp_micros(self.update_time)
                .ok_or_else(|| corrupt_in("actor_balances", "update_time", "out of range"))?,
        })
    }
}

/// One `usage_records` row as read (with its id).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = usage_records)]
pub(crate) struct UsageRow {
    pub id: i64,
    pub nid: String,
    pub actor_id: String,
    pub key_id: String,
    pub usage_type: String,
    pub usage_amount: i64,
    pub cost_micros: i64,
    pub model: String,
    pub request_id: Option<String>,
    pub session_id: String,
    pub create_time: i64,
}

/// A `usage_records` row to insert (the id is the database's).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = usage_records)]
pub(crate) struct NewUsageRow {
    pub nid: String,
    pub actor_id: String,
    pub key_id: String,
    pub usage_type: String,
    pub usage_amount: i64,
    pub cost_micros: i64,
    pub model: String,
    pub request_id: Option<String>,
    pub session_id: String,
    pub create_time: i64,
}

impl NewUsageRow {
    pub(crate) fn from_record(r: &UsageRecord) -> NewUsageRow {
        NewUsageRow {
            nid: nid_str(r.nid),
            actor_id: r.actor_id.clone(),
            key_id: r.key_id.clone(),
            usage_type: r.usage_type.clone(),
            usage_amount: r.usage_amount,
            cost_micros: r.cost_micros,
            model: r.model.clone(),
            request_id: r.request_id.clone(),
            session_id: r.session_id.clone(),
            create_time: micros(r.create_time),
        }
    }
}

impl UsageRow {
    pub(crate) fn into_record(self) -> Result<UsageRecord> {
        Ok(UsageRecord {
            id: self.id,
            nid: Uuid::parse_str(&self.nid).map_err(|e| corrupt_in("usage_records", "nid", e))?,
            actor_id: self.actor_id,
            key_id: self.key_id,
            usage_type: self.usage_type,
            usage_amount: self.usage_amount,
            cost_micros: self.cost_micros,
            model: self.model,
            request_id: self.request_id,
            session_id: self.session_id,
            create_time: DateTime::from_timestamp_micros(self.create_time)
                .ok_or_else(|| corrupt_in("usage_records", "create_time", "out of range"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use diesel::query_builder::AsQuery;
    use diesel::sqlite::Sqlite;
    use diesel::{QueryDsl, SelectableHelper, debug_query};

    use super::*;

    /// The queries (`sql.rs`) read rows with the table's default selection, which diesel maps to
    /// `Row` by position; this holds only while `Row`'s fields follow the table's columns.
    #[test]
    fn row_fields_follow_the_table_columns() {
        let by_name =
            debug_query::<Sqlite, _>(&api_keys::table.select(Row::as_select())).to_string();
        let by_position = debug_query::<Sqlite, _>(&api_keys::table.as_query()).to_string();
        assert_eq!(by_name, by_position);
    }
}
