//! Listing with the filter grammar (`actor_id="…"`, `status=KEY_STATUS_X`, joined by `AND`), the
//! `actor_id`/`status` query parameters, keyset pagination and sealed page tokens.

use chrono::Utc;
use talos_secrets::{Cursor, SecretsError};
use talos_storage::{KeyKind, KeyRecord, KeyStatus, ListQuery};
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

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Filter {
    pub actor_id: Option<String>,
    pub status: Option<KeyStatus>,
}

fn parse_status(v: &str) -> Result<KeyStatus> {
    let upper = v.trim().to_ascii_uppercase();
    match upper.strip_prefix("KEY_STATUS_").unwrap_or(&upper) {
        "ACTIVE" => Ok(KeyStatus::Active),
        "REVOKED" => Ok(KeyStatus::Revoked),
        "EXPIRED" => Ok(KeyStatus::Expired),
        _ => Err(CoreError::bad(format!(
            "invalid status {v:?}: use KEY_STATUS_ACTIVE, KEY_STATUS_REVOKED or KEY_STATUS_EXPIRED"
        ))),
    }
}

/// Parses the AIP-160 subset upstream supports.
pub(crate) fn parse_filter(text: &str) -> Result<Filter> {
    let mut f = Filter::default();
    if text.trim().is_empty() {
        return Ok(f);
    }
    for clause in split_and(text)? {
        let (field, value) = clause.split_once('=').ok_or_else(|| {
            CoreError::bad(format!(
                "invalid filter clause {clause:?}: expected field=value"
            ))
        })?;
        let value = value.trim();
        match field.trim() {
            "actor_id" => {
                if f.actor_id.is_some() {
                    return Err(CoreError::bad("filter field actor_id given twice"));
                }
                let v = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| {
                        CoreError::bad("filter actor_id value must be a quoted string")
                    })?;
                if v.is_empty() || v.chars().count() > 256 || v.contains('"') {
                    return Err(CoreError::bad("filter actor_id must be 1..256 characters"));
                }
                f.actor_id = Some(v.to_string());
            }
            "status" => {
                if f.status.is_some() {
                    return Err(CoreError::bad("filter field status given twice"));
                }
                if !value.starts_with("KEY_STATUS_") {
                    return Err(CoreError::bad(format!(
                        "invalid status {value:?} in filter"
                    )));
                }
                f.status = Some(parse_status(value)?);
            }
            other => {
                return Err(CoreError::bad(format!(
                    "unknown filter field {:?} (allowed: actor_id, status)",
                    other.trim()
                )));
            }
        }
    }
    Ok(f)
}

/// Splits on ` AND ` outside quotes; `OR` is refused.
fn split_and(text: &str) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let tokens: Vec<&str> = text.split(' ').collect();
    for tok in tokens {
        let quotes = tok.matches('"').count();
        if !in_quotes && tok == "AND" {
            parts.push(std::mem::take(&mut cur));
            continue;
        }
        if !in_quotes && (tok == "OR" || tok == "NOT") {
            return Err(CoreError::bad(format!(
                "filter operator {tok} is not supported (only AND)"
            )));
        }
        if !cur.is_empty() || in_quotes {
            cur.push(' ');
        }
        cur.push_str(tok);
        if quotes % 2 == 1 {
            in_quotes = !in_quotes;
        }
    }
    parts.push(cur);
    let parts: Vec<String> = parts.into_iter().map(|p| p.trim().to_string()).collect();
    if parts.iter().any(String::is_empty) {
        return Err(CoreError::bad("invalid filter: empty clause"));
    }
    Ok(parts)
}

impl Service {
    pub async fn list(&self, nid: Uuid, kind: KeyKind, req: ListRequest) -> Result<Page> {
        let mut filter = parse_filter(req.filter.as_deref().unwrap_or(""))?;
        if let Some(a) = req.actor_id.filter(|a| !a.is_empty()) {
            if filter.actor_id.is_some() {
                return Err(CoreError::bad(
                    "actor_id given both as a parameter and in filter",
                ));
            }
            filter.actor_id = Some(a);
        }
        if let Some(s) = req.status.filter(|s| !s.is_empty()) {
            if filter.status.is_some() {
                return Err(CoreError::bad(
                    "status given both as a parameter and in filter",
                ));
            }
            filter.status = Some(parse_status(&s)?);
        }
        if filter.status.is_some() && filter.actor_id.is_none() {
            return Err(CoreError::bad(
                "status filter must be combined with actor_id",
            ));
        }
        let page_size = match req.page_size {
            n if n <= 0 => 50,
            n if n > 1000 => 1000,
            n => n as usize,
        };
        let rt = self.runtime();
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
            actor_id: filter.actor_id,
            status: filter.status,
            after,
            limit: page_size + 1,
            now: Utc::now(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_grammar() {
        let ok: &[(&str, Filter)] = &[
            ("", Filter::default()),
            (
                r#"actor_id="u1""#,
                Filter {
                    actor_id: Some("u1".into()),
                    status: None,
                },
            ),
            (
                r#"actor_id="a b" AND status=KEY_STATUS_REVOKED"#,
                Filter {
                    actor_id: Some("a b".into()),
                    status: Some(KeyStatus::Revoked),
                },
            ),
            (
                r#"status=KEY_STATUS_EXPIRED AND actor_id="x""#,
                Filter {
                    actor_id: Some("x".into()),
                    status: Some(KeyStatus::Expired),
                },
            ),
        ];
        for (text, want) in ok {
            assert_eq!(&parse_filter(text).unwrap(), want, "{text}");
        }
        for bad in [
            r#"actor_id="a" OR actor_id="b""#,
            r#"actor_id="a" AND actor_id="b""#,
            r#"name="x""#,
            "status=KEY_STATUS_UNSPECIFIED",
            "status=active",
            "actor_id=unquoted",
            r#"actor_id="a" AND"#,
            "garbage",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad} should be rejected");
        }
    }
}
