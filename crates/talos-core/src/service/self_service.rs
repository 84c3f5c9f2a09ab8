//! Self-service: an actor, authenticated by a proxy that talos-http trusts, issues, lists and
//! revokes its own issued keys and reads its own balance and usage (the latter two are
//! `metering.rs`). Every operation is scoped to the actor: another actor's key reads as not
//! found, and an idempotent retry that names another actor's request id is refused.

use talos_storage::{KeyKind, Revocation, RevocationReason};
use uuid::Uuid;

use super::Service;
use super::keys::{IssuedKey, kind_of_key_id};
use super::list::Page;
use super::requests::{KeySpec, ListRequest, check_len};
use crate::audit;
use crate::error::{CoreError, Result};

/// A key an actor issues for itself: a name (default `self-issued`), a TTL (default
/// `credentials.api_keys.default_ttl`) and an idempotency key.
#[derive(Debug, Clone, Default)]
pub struct SelfIssueRequest {
    pub name: Option<String>,
    pub ttl: Option<String>,
    pub request_id: Option<String>,
}

/// The name of a self-issued key that was given none.
const DEFAULT_NAME: &str = "self-issued";

fn check_actor(actor_id: &str) -> Result<()> {
    check_len("actor_id", actor_id, 1, 255)
}

impl Service {
    /// Issues a key held by `actor_id`.
    pub async fn self_issue(
        &self,
        nid: Uuid,
        actor_id: &str,
        req: SelfIssueRequest,
    ) -> Result<IssuedKey> {
        check_actor(actor_id)?;
        let spec = KeySpec {
            name: req
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            actor_id: actor_id.to_owned(),
            ttl: req.ttl,
            request_id: req.request_id,
            ..KeySpec::default()
        };
        let issued = audit::as_self_service(actor_id, self.issue(nid, spec)).await?;
        // A retry returns the earlier request's key: only ever the caller's own.
        if issued.key.actor_id != actor_id {
            return Err(CoreError::Duplicate);
        }
        Ok(issued)
    }

    /// A page of `actor_id`'s issued keys, newest key id first.
    pub async fn self_list(
        &self,
        nid: Uuid,
        actor_id: &str,
        page_size: i64,
        page_token: Option<String>,
    ) -> Result<Page> {
        // Checked first: `list` reads an empty actor as "every actor".
        check_actor(actor_id)?;
        let req = ListRequest {
            page_size,
            page_token,
            actor_id: Some(actor_id.to_owned()),
            status: None,
        };
        self.list(nid, KeyKind::Issued, req).await
    }

    /// Revokes one of `actor_id`'s issued keys. Another actor's key is "not found", like a
    /// missing one; `PRIVILEGE_WITHDRAWN` is reserved for administrators.
    pub async fn self_revoke_key(
        &self,
        nid: Uuid,
        actor_id: &str,
        key_id: &str,
        reason: RevocationReason,
        description: Option<String>,
    ) -> Result<()> {
        check_actor(actor_id)?;
        let not_found = || CoreError::KeyNotFound {
            kind: KeyKind::Issued,
        };
        if kind_of_key_id(key_id) != Some(KeyKind::Issued) {
            return Err(not_found());
        }
        if reason == RevocationReason::PrivilegeWithdrawn {
            return Err(CoreError::ReasonReserved);
        }
        let description = description.filter(|d| !d.is_empty());
        if let Some(d) = &description {
            check_len("description", d, 0, 1024)?;
        }
        // The actor of a key never changes, so checking it before the revoke is enough.
        match self.store.get_key(nid, KeyKind::Issued, key_id).await? {
            Some(k) if k.actor_id == actor_id => {}
            _ => return Err(not_found()),
        }
        let revocation = Revocation {
            reason,
            description,
            at: self.now(),
        };
        let rec = self
            .store
            .revoke_key(nid, KeyKind::Issued, key_id, &revocation)
            .await
            .map_err(|e| match e {
                talos_storage::StorageError::NotFound => not_found(),
                other => other.into(),
            })?;
        self.evict(&rec).await;
        audit::as_self_service(actor_id, async {
            audit::key_event(audit::names::ISSUED_REVOKED, &rec)
        })
        .await;
        Ok(())
    }
}
