//! Listing: keyset pagination (newest key id first) with sealed page tokens, restricted to an
//! actor and a status.

use talos_secrets::{Cursor, SecretsError};
use talos_storage::{KeyKind, KeyRecord, ListQuery};
use uuid::Uuid;

use super::Service;
use super::requests::ListRequest;
use crate::error::{CoreError, Result};

/// One page of keys; `next_page_token` is non-empty exactly when more keys match.
#[derive(Debug, Clone)]
pub struct Page {
    pub keys: Vec<KeyRecord>,
    pub next_page_token: String,
}

impl Service {
    #[tracing::instrument(level = "debug", name = "talos.list", skip_all, fields(network = %nid))]
    pub async fn list(&self, nid: Uuid, kind: KeyKind, req: ListRequest) -> Result<Page> {
        let actor_id = req.actor_id.filter(|a| !a.is_empty());
        // As upstream: a status filter narrows one actor's keys, never the whole network.
        if req.status.is_some() && actor_id.is_none() {
            return Err(CoreError::bad(
                "status filter must be combined with actor_id",
            ));
        }
        let page_size = match req.page_size {
            n if n <= 0 => 50,
            n if n > 1000 => 1000,
            n => n as usize,
        };
        let rt = self.runtime(nid);
        let after = match req.page_token.filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => {
                if rt.keyring.current().is_err() {
                    return Err(CoreError::NoHmacKey);
                }
                let cursor = talos_secrets::open_page_token(&rt.keyring, &token, nid).map_err(
                    |e| match e {
                        SecretsError::PageTokenNetworkMismatch => {
                            CoreError::bad("page token network mismatch")
                        }
                        _ => CoreError::bad("invalid page token"),
                    },
                )?;
                Some(cursor.last_key_id)
            }
        };
        let query = ListQuery {
            actor_id,
            status: req.status,
            after,
            limit: page_size + 1,
            now: self.now(),
        };
        let mut keys = self.store.list_keys(nid, kind, &query).await?;
        let mut next_page_token = String::new();
        if keys.len() > page_size {
            keys.truncate(page_size);
            let entry = rt.keyring.current().map_err(|_| CoreError::NoHmacKey)?;
            let last = keys.last().map(|k| k.key_id.clone()).unwrap_or_default();
            next_page_token = talos_secrets::seal_page_token(
                entry,
                &Cursor {
                    last_key_id: last,
                    nid,
                },
            );
        }
        Ok(Page {
            keys,
            next_page_token,
        })
    }
}
