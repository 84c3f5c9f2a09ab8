//! Metering (docs/metering.md): an actor's balance, debited by usage ingestion and checked by
//! verification, and a key's credits, spent by verification.
//!
//! The database is the only place a balance lives. A spend is one conditional `UPDATE`, an
//! ingestion one transaction that takes its request id and debits, so the count is exact across
//! any number of nodes, survives a node crash and never counts a retried request id twice.
//!
//! What a verification of an unmetered key costs stays what it was: the cached row says whether
//! the key has credits (`credits`) and whether its actor had a quota when the row was read
//! (`actor_has_quota`, from the lookup's join). Setting a quota evicts the cache entries of every
//! key of the actor, through the same eviction path as a revocation (tickets, outbox and lease),
//! so after `setQuota` returns no node answers from a row that predates the quota
//! (docs/ARCHITECTURE.md, "Metering and the cache").

use std::collections::BTreeMap;

use talos_cache::CacheKey;
use talos_storage::{
    ActorBalance, CreditSpend, KeyKind, KeyRecord, KeyStatus, ListQuery, StorageError, UsageRecord,
};
use uuid::Uuid;

use super::Service;
use super::requests::check_len;
use super::verify::{Call, VerifyErrorCode, VerifyFailure, fail};
use crate::audit;
use crate::error::{CoreError, Result};

/// What metering found for one verification; empty for a key that is not metered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metering {
    /// The key's credits after this verification (what is left when it was refused).
    pub credits_remaining: Option<i64>,
    /// The actor's balance, when the actor has a quota.
    pub balance: Option<BalanceStatus>,
}

impl Metering {
    /// Whether the answer depends on a balance (and so must not be cached downstream).
    pub fn is_metered(&self) -> bool {
        self.credits_remaining.is_some() || self.balance.is_some()
    }
}

/// An actor's balance as verification reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceStatus {
    pub remaining_micros: i64,
    /// Greater than 0 (an actor without a quota reports none).
    pub quota_micros: i64,
}

/// A usage event to ingest.
#[derive(Debug, Clone, Default)]
pub struct UsageInput {
    pub actor_id: String,
    pub key_id: String,
    pub usage_type: String,
    pub usage_amount: i64,
    pub cost_micros: i64,
    pub model: String,
    /// Idempotency key (at most 36 characters; empty = none).
    pub request_id: Option<String>,
    pub session_id: String,
}

/// What an ingestion did: `accepted` is false for a request id seen before (nothing debited).
#[derive(Debug, Clone)]
pub struct Ingested {
    pub accepted: bool,
    /// The actor's balance after it; `None` when the actor has none.
    pub balance: Option<ActorBalance>,
}

/// The most records one history page returns.
const MAX_HISTORY: i64 = 1000;
/// Keys read per page when evicting an actor's keys.
const EVICT_PAGE: usize = 1000;

fn refused(reason: &'static str) {
    metrics::counter!("talos_metering_refusals_total", "reason" => reason).increment(1);
}

/// `field` at most `max` characters (and no NUL), empty allowed.
fn check_optional(field: &str, v: &str, max: usize) -> Result<()> {
    check_len(field, v, 0, max)
}

impl Service {
    /// Metering, after every other check passed: the actor's balance (refused when exhausted),
    /// then the key's credits (refused when they cannot pay). Verifications that do not count
    /// (deriving a token checks its parent so) are not metered.
    pub(crate) async fn meter(
        &self,
        call: &Call<'_>,
        rec: &KeyRecord,
    ) -> (Metering, std::result::Result<(), VerifyFailure>) {
        let mut m = Metering::default();
        if !call.count {
            return (m, Ok(()));
        }
        // `None` (a row read without the join) is checked like a metered actor.
        if rec.actor_has_quota != Some(false) {
            match self.store.get_balance(call.nid, &rec.actor_id).await {
                Ok(Some(b)) if b.quota_micros > 0 => {
                    m.balance = Some(BalanceStatus {
                        remaining_micros: b.remaining_micros,
                        quota_micros: b.quota_micros,
                    });
                    if b.remaining_micros <= 0 {
                        refused("balance_exhausted");
                        let f = fail(
                            VerifyErrorCode::BalanceExhausted,
                            "the actor's balance is exhausted",
                        );
                        return (m, Err(f));
                    }
                }
                Ok(_) => {}
                Err(e) => return (m, Err(lookup_failed(&e))),
            }
        }
        let Some(credits) = rec.credits else {
            return (m, Ok(()));
        };
        let cost = i64::try_from(call.req.cost.unwrap_or(1)).unwrap_or(i64::MAX);
        let spend = if cost == 0 {
            self.credits_left(call, rec).await
        } else {
            let refill = credits.due_refill(call.now);
            self.store
                .spend_credits(call.nid, rec.kind, &rec.key_id, cost, refill)
                .await
        };
        let result = match spend {
            Ok(CreditSpend::Spent { remaining }) => {
                m.credits_remaining = Some(remaining);
                metrics::counter!("talos_credits_spent_total").increment(cost.unsigned_abs());
                Ok(())
            }
            Ok(CreditSpend::Insufficient { remaining }) => {
                m.credits_remaining = Some(remaining.max(0));
                refused("usage_exceeded");
                Err(fail(
                    VerifyErrorCode::UsageExceeded,
                    "usage exceeded: not enough credits left",
                ))
            }
            // Credits removed since the row was cached: nothing to pay.
            Ok(CreditSpend::Unmetered) => Ok(()),
            // Revoked (or deleted) since the row was read.
            Ok(CreditSpend::Inactive) => {
                Err(fail(VerifyErrorCode::Revoked, "API key has been revoked"))
            }
            Err(e) => Err(lookup_failed(&e)),
        };
        (m, result)
    }

    /// Cost 0: the credits left as stored now, with a due refill applied (nothing is written).
    async fn credits_left(
        &self,
        call: &Call<'_>,
        rec: &KeyRecord,
    ) -> std::result::Result<CreditSpend, StorageError> {
        let fresh = self.store.get_key(call.nid, rec.kind, &rec.key_id).await?;
        Ok(match fresh {
            Some(k) if k.status_at(call.now) == KeyStatus::Active => match k.credits {
                Some(c) if c.remaining_at(call.now) > 0 => CreditSpend::Spent {
                    remaining: c.remaining_at(call.now),
                },
                Some(c) => CreditSpend::Insufficient {
                    remaining: c.remaining_at(call.now),
                },
                None => CreditSpend::Unmetered,
            },
            _ => CreditSpend::Inactive,
        })
    }

    /// Records a usage event and debits its cost from the actor's balance; a request id seen
    /// before is neither recorded nor debited (`accepted: false`).
    pub async fn ingest_usage(&self, nid: Uuid, input: UsageInput) -> Result<Ingested> {
        check_len("actor_id", &input.actor_id, 1, 255)?;
        check_optional("key_id", &input.key_id, 255)?;
        check_optional("usage_type", &input.usage_type, 255)?;
        check_optional("model", &input.model, 255)?;
        check_optional("session_id", &input.session_id, 255)?;
        let request_id = input.request_id.filter(|r| !r.is_empty());
        if let Some(r) = &request_id {
            check_len("request_id", r, 1, 36)?;
        }
        if input.usage_amount < 0 {
            return Err(CoreError::bad("usage_amount must not be negative"));
        }
        if input.cost_micros < 0 {
            return Err(CoreError::bad("cost_micros must not be negative"));
        }
        let record = UsageRecord {
            id: 0,
            nid,
            actor_id: input.actor_id,
            key_id: input.key_id,
            usage_type: input.usage_type,
            usage_amount: input.usage_amount,
            cost_micros: input.cost_micros,
            model: input.model,
            request_id,
            session_id: input.session_id,
            create_time: self.now(),
        };
        let out = self.store.ingest_usage(&record).await?;
        let accepted = if out.accepted { "true" } else { "false" };
        metrics::counter!("talos_usage_ingested_total", "accepted" => accepted).increment(1);
        if out.accepted {
            metrics::counter!("talos_usage_cost_micros_total")
                .increment(record.cost_micros.unsigned_abs());
            audit::usage_event(&record, out.balance.as_ref());
        }
        Ok(Ingested {
            accepted: out.accepted,
            balance: out.balance,
        })
    }

    /// Sets an actor's quota (0 = unlimited). A new balance starts full; otherwise the remaining
    /// balance moves by the change. Then every cached key of the actor is evicted, so that
    /// verification sees whether the actor is metered now.
    pub async fn set_actor_quota(
        &self,
        nid: Uuid,
        actor_id: &str,
        quota_micros: i64,
    ) -> Result<ActorBalance> {
        check_len("actor_id", actor_id, 1, 255)?;
        if quota_micros < 0 {
            return Err(CoreError::bad("quota_micros must not be negative"));
        }
        let b = self
            .store
            .set_quota(nid, actor_id, quota_micros, self.now())
            .await?;
        self.evict_actor(nid, actor_id).await?;
        audit::balance_event(audit::names::ACTOR_QUOTA_SET, &b);
        Ok(b)
    }

    /// Adds to an actor's remaining balance.
    pub async fn top_up_actor(
        &self,
        nid: Uuid,
        actor_id: &str,
        amount_micros: i64,
    ) -> Result<ActorBalance> {
        check_len("actor_id", actor_id, 1, 255)?;
        if amount_micros <= 0 {
            return Err(CoreError::bad("amount_micros must be greater than 0"));
        }
        let b = self
            .store
            .top_up(nid, actor_id, amount_micros, self.now())
            .await?;
        audit::balance_event(audit::names::ACTOR_TOPPED_UP, &b);
        Ok(b)
    }

    /// An actor's balance; zeros (no quota) when it has none.
    pub async fn actor_balance(&self, nid: Uuid, actor_id: &str) -> Result<ActorBalance> {
        check_len("actor_id", actor_id, 1, 255)?;
        Ok(self
            .store
            .get_balance(nid, actor_id)
            .await?
            .unwrap_or_else(|| ActorBalance {
                nid,
                actor_id: actor_id.to_owned(),
                quota_micros: 0,
                remaining_micros: 0,
                update_time: self.now(),
            }))
    }

    /// An actor's usage records, newest first: `limit` ≤ 0 means 50, at most 1000.
    pub async fn usage_history(
        &self,
        nid: Uuid,
        actor_id: &str,
        limit: i64,
    ) -> Result<Vec<UsageRecord>> {
        check_len("actor_id", actor_id, 1, 255)?;
        let limit = match limit {
            n if n <= 0 => 50,
            n => n.min(MAX_HISTORY),
        };
        Ok(self
            .store
            .usage_history(nid, actor_id, limit as usize)
            .await?)
    }

    /// Evicts the cache entries of every key of `actor_id` (both kinds), after a change of its
    /// quota: the entries say whether the actor was metered when they were read.
    async fn evict_actor(&self, nid: Uuid, actor_id: &str) -> Result<()> {
        let mut keys = BTreeMap::new();
        for kind in [KeyKind::Issued, KeyKind::Imported] {
            let mut after = None;
            loop {
                let query = ListQuery {
                    actor_id: Some(actor_id.to_owned()),
                    status: None,
                    after: after.take(),
                    limit: EVICT_PAGE,
                    now: self.now(),
                };
                let page = self.store.list_keys(nid, kind, &query).await?;
                for rec in &page {
                    let key = Self::cache_key(nid, rec);
                    keys.insert(key.key.clone(), key);
                }
                if page.len() < EVICT_PAGE {
                    break;
                }
                after = page.last().map(|r| r.key_id.clone());
            }
        }
        let keys: Vec<CacheKey> = keys.into_values().collect();
        self.evict_keys(&keys).await;
        Ok(())
    }
}

fn lookup_failed(e: &StorageError) -> VerifyFailure {
    tracing::error!(error = %e, "metering lookup failed");
    fail(VerifyErrorCode::Internal, "verification lookup failed")
}
