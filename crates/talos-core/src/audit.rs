//! Audit events: one structured log event per mutation and per failed verification, with a
//! stable `event` field (reference.md §13) under the `talos::audit` target. Never a secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::{ActorBalance, KeyRecord, UsageRecord};

/// Stable event names.
pub mod names {
    pub const ISSUED_CREATED: &str = "IssuedAPIKeyCreated";
    pub const IMPORTED_CREATED: &str = "ImportedAPIKeyCreated";
    pub const ISSUED_UPDATED: &str = "IssuedAPIKeyUpdated";
    pub const IMPORTED_UPDATED: &str = "ImportedAPIKeyUpdated";
    pub const ISSUED_REVOKED: &str = "IssuedAPIKeyRevoked";
    pub const IMPORTED_REVOKED: &str = "ImportedAPIKeyRevoked";
    pub const ISSUED_ROTATED: &str = "IssuedAPIKeyRotated";
    pub const IMPORTED_DELETED: &str = "ImportedAPIKeyDeleted";
    pub const IMPORT_FAILED: &str = "APIKeyImportFailed";
    pub const DERIVED_TOKEN: &str = "APIKeyDerivedToken";
    pub const VERIFICATION_FAILED: &str = "APIKeyVerificationFailed";
    pub const ACTOR_QUOTA_SET: &str = "ActorBalanceQuotaSet";
    pub const ACTOR_TOPPED_UP: &str = "ActorBalanceToppedUp";
    pub const USAGE_INGESTED: &str = "UsageIngested";
}

tokio::task_local! {
    /// The name of the admin token the current request authenticated with.
    static ADMIN_TOKEN: Arc<str>;
    /// The actor acting on its own keys through self-service.
    static SELF_SERVICE: Arc<str>;
}

/// Runs `f` as self-service by `actor`: key events logged inside carry it as
/// `self_service_actor`.
pub(crate) async fn as_self_service<F: Future>(actor: &str, f: F) -> F::Output {
    SELF_SERVICE.scope(Arc::from(actor), f).await
}

/// The self-service actor of the current request, `""` when none.
fn self_service_actor() -> Arc<str> {
    SELF_SERVICE
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::from(""))
}

/// Runs `f` on behalf of the admin token `name`: audit events logged inside carry it as
/// `admin_token` (the name, never the token).
pub async fn with_admin_token<F: Future>(name: Arc<str>, f: F) -> F::Output {
    ADMIN_TOKEN.scope(name, f).await
}

/// The admin token name of the current request, `""` when none (auth off, or a public route).
pub(crate) fn admin_token() -> Arc<str> {
    ADMIN_TOKEN
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::from(""))
}

/// Logs a mutation of `key`.
pub(crate) fn key_event(event: &'static str, key: &KeyRecord) {
    tracing::info!(target: "talos::audit", event, nid = %key.nid, key_id = %key.key_id, actor_id = %key.actor_id, admin_token = %admin_token(), self_service_actor = %self_service_actor(), "audit");
}

/// Logs a change of an actor's balance (quota set, top-up).
pub(crate) fn balance_event(event: &'static str, b: &ActorBalance) {
    tracing::info!(target: "talos::audit", event, nid = %b.nid, actor_id = %b.actor_id, quota_micros = b.quota_micros, remaining_micros = b.remaining_micros, admin_token = %admin_token(), "audit");
}

/// Logs an accepted usage event and the balance it left.
pub(crate) fn usage_event(r: &UsageRecord, balance: Option<&ActorBalance>) {
    tracing::info!(
        target: "talos::audit",
        event = names::USAGE_INGESTED,
        nid = %r.nid,
        actor_id = %r.actor_id,
        key_id = %r.key_id,
        usage_type = %r.usage_type,
        cost_micros = r.cost_micros,
        request_id = r.request_id.as_deref().unwrap_or(""),
        remaining_micros = balance.map(|b| b.remaining_micros),
        admin_token = %admin_token(),
        "audit"
    );
}

/// Failure events are limited per network so a flood of bad credentials cannot flood the log.
pub(crate) struct FailureAudit {
    per_minute: u32,
    windows: Mutex<HashMap<Uuid, (Instant, u32)>>,
}

impl FailureAudit {
    pub(crate) fn new(per_minute: u32) -> Self {
        FailureAudit {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an event for `nid` may be logged now.
    pub(crate) fn allow(&self, nid: Uuid) -> bool {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() > 10_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let slot = w.entry(nid).or_insert((now, 0));
        if now.duration_since(slot.0) >= Duration::from_secs(60) {
            *slot = (now, 0);
        }
        slot.1 += 1;
        slot.1 <= self.per_minute
    }

    /// Logs a failed verification (rate-limited per network). `code` is the verification error code.
    pub(crate) fn verification_failed(&self, nid: Uuid, code: &str, message: &str) {
        // Skip the lock entirely when the audit target is filtered out (a hot path under attack).
        if tracing::enabled!(target: "talos::audit", tracing::Level::INFO) && self.allow(nid) {
            tracing::info!(target: "talos::audit", event = names::VERIFICATION_FAILED, nid = %nid, error_code = code, reason = message, "audit");
        }
    }

    pub(crate) fn import_failed(&self, nid: Uuid, reason: &str) {
        if self.allow(nid) {
            tracing::info!(target: "talos::audit", event = names::IMPORT_FAILED, nid = %nid, reason, admin_token = %admin_token(), "audit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_network() {
        let a = FailureAudit::new(10);
        let (n1, n2) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!((0..25).filter(|_| a.allow(n1)).count(), 10);
        assert!(a.allow(n2), "another network has its own budget");
    }
}
