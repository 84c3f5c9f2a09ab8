//! The configuration reference (`docs/configuration.md`), generated from the typed tree so it
//! cannot drift: every leaf with its type, default and environment variable.

use serde_json::Value;

use super::{Sections, env_var_names};

/// One line of prose per key of the domain's sections. A key without one fails
/// [`reference_markdown`].
fn describe(path: &str) -> Option<&'static str> {
    Some(match path {
        "credentials.issuer" => {
            "Required. The `iss` of derived tokens and the `issuer` of verify responses."
        }
        "credentials.issuer_retired" => {
            "Former issuers still accepted in derived tokens: strings or `{value, expires_at}`."
        }
        "credentials.clock_skew" => "Tolerance for key timestamps and token `nbf` (at most 600s).",
        "credentials.api_keys.default_ttl" => {
            "TTL when a request sends none; unset = requests must send `ttl`."
        }
        "credentials.api_keys.max_ttl" => {
            "Largest TTL accepted (inclusive), and the maximum age of an issued key."
        }
        "credentials.api_keys.prefix.current" => {
            "Prefix of new issued keys (`^[a-zA-Z0-9_]{1,16}$`)."
        }
        "credentials.api_keys.prefix.retired" => "Prefixes still accepted on verification.",
        "credentials.api_keys.prefix.public_current" => {
            "Prefix of keys issued with visibility PUBLIC."
        }
        "credentials.api_keys.prefix.public_retired" => {
            "Public prefixes still accepted on verification."
        }
        "credentials.derived_tokens.default_ttl" => {
            "TTL of derived tokens when the request sends none."
        }
        "credentials.derived_tokens.jwt.signing_key_id" => {
            "`kid` of the JWT signing key; empty = first key with `use: sig`."
        }
        "credentials.derived_tokens.jwt.signing_keys.urls" => {
            "JWK sets (`base64://…` or `file://…`) holding Ed25519 keys (`talos jwk generate eddsa`). Derived JWTs are signed and verified with EdDSA only: a key of another type (RSA, EC, `oct`) is a startup error naming it, never skipped."
        }
        "credentials.derived_tokens.macaroon.prefix.current" => {
            "Prefix of new macaroons (`^[a-zA-Z0-9_]{1,8}$`)."
        }
        "credentials.derived_tokens.macaroon.prefix.retired" => "Macaroon prefixes still accepted.",
        "secrets.hmac.current" => {
            "The HMAC secret (at least 32 characters): key checksums, import hashes, macaroon and cursor keys."
        }
        "secrets.hmac.retired" => {
            "Former secrets, tried after `current` on verification: strings or `{value, expires_at}`."
        }
        "db.dsn" => "`sqlite://PATH`, `sqlite::memory:`, or `postgres://…`.",
        "db.max_conns" => "Connections in the pool.",
        "db.pool_timeout" => "How long a request waits for a pooled connection before `503`.",
        "db.connect_timeout" => "How long opening a connection may take.",
        "db.statement_timeout" => {
            "Longest one database statement may take, waiting for locks included (PostgreSQL `statement_timeout` on every connection; SQLite's busy timeout is capped by it). A stalled database then fails a request with 503 (an uncached verify with `VERIFICATION_ERROR_INTERNAL`) instead of hanging. PostgreSQL connections also get TCP keepalive (probes after 30 s idle, 3 × 10 s) unless the DSN sets `keepalives*`."
        }
        "cache.type" => "Verification cache: `noop`, `memory` (per node) or `redis` (shared).",
        "cache.enabled" => "Turns the cache off without changing its type (hot-reloadable).",
        "cache.ttl" => "Longest time an entry is served; capped by the key's expiry.",
        "cache.memory.max_size" => "Size bound of the in-process cache (`100MiB`, or bytes).",
        "cache.memory.num_counters" => {
            "No effect (upstream's Ristretto admission counters; moka sizes its own). Accepted so upstream files load; setting it logs a startup warning."
        }
        "cache.redis.mode" => {
            "`standalone` (one server), `cluster` (Redis Cluster; keys are hash-tagged so every script touches one slot) or `sentinel` (a Sentinel-managed primary)."
        }
        "cache.redis.addrs" => {
            "Redis `host:port` addresses: the server (standalone: the first is used), seed nodes (cluster: list several, the invalidation subscriber rotates through them; with `cache.redis.local` on, each primary among them also gets a fast-path subscription), or the sentinels."
        }
        "cache.redis.master_name" => "Sentinel mode: the monitored primary's name (required).",
        "cache.redis.sentinel_password" => {
            "Sentinel mode: password of the sentinels themselves, if they require one (never logged)."
        }
        "cache.redis.wait_replicas" => {
            "Replicas that must acknowledge a cache eviction (`WAIT`) before it counts as delivered; 0 = do not wait. Set 1 with replicas and failover: an eviction a dying primary never replicated would come back with the promoted replica. Unacknowledged evictions are retried through the invalidation outbox, and the shared cache is not read meanwhile."
        }
        "cache.redis.password" => "Redis password (never logged).",
        "cache.redis.db" => "Redis database number (0..15).",
        "cache.redis.pool_size" => {
            "No effect: each node multiplexes commands over one connection per Redis node (plus one for pub/sub), not a pool. Accepted so upstream files load; setting it logs a startup warning."
        }
        "cache.redis.timeout" => {
            "Bounds every Redis connect and command; a slower Redis counts as unavailable (verify falls back to the database)."
        }
        "cache.redis.min_idle_conns"
        | "cache.redis.conn_max_idle_time"
        | "cache.redis.conn_max_lifetime" => {
            "No effect (a go-redis pool knob; see `pool_size`). Accepted so upstream files load; setting it logs a startup warning."
        }
        "cache.redis.tls.enabled" => "Connect to Redis over TLS.",
        "cache.redis.key_prefix" => {
            "Prefix of every Redis key and channel (`<prefix>:v1:…`); deployments sharing one Redis need different ones."
        }
        "cache.redis.local.enabled" => {
            "Keep a small in-process layer in front of Redis (`cache.type: redis`), saving a Redis round trip per hit. Off by default: pub/sub invalidation evicts it on every node, but a node whose channel stalls silently may answer from it for up to 2 s (the heartbeat lease) after a mutation elsewhere returned (docs/ARCHITECTURE.md, \"Revocation integrity\")."
        }
        "cache.redis.local.ttl" => {
            "Longest life of an entry in that in-process layer (bounded by `cache.memory.max_size`)."
        }
        "rate_limit.enabled" => {
            "Enforce keys' `rate_limit_policy` on verify (reloadable). Off (the default), policies are stored and returned but not enforced; the server says so in one startup log line."
        }
        "rate_limit.backend" => "`memory` (per node) or `redis` (shared by all nodes).",
        "rate_limit.fail_closed" => {
            "When the limiter is unreachable: false = allow (fail open), true = deny."
        }
        "quota.api_keys_max" => "Maximum active keys per network; 0 = no cap.",
        "last_used.queue_size" => {
            "Keys waiting for their `last_used_time` write. Verification only offers a key to this queue (at most once per key per UTC day per node) and never waits: when it is full the key is written on a later use (`talos_last_used_dropped_total`)."
        }
        "last_used.flush_size" => "Keys per `last_used_time` write (one transaction).",
        "last_used.flush_interval" => {
            "Longest a queued key waits for its batch to fill before it is written anyway (so `last_used_time` may lag use by this much)."
        }
        "last_used.num_workers" => "Writers of `last_used_time` batches working in parallel.",
        "multitenancy.enabled" => "Serve several networks, chosen by the request's `Host`.",
        "multitenancy.networks" => {
            "`[{hostname, id, config_path}]`; as env, a JSON list. `config_path` (optional; relative to the working directory) names a YAML overlay of that network's `credentials.*`, `secrets.*`, `rate_limit.enabled` and `cache.ttl`: `credentials` merges key by key into the main file's, `secrets` replaces the main file's section whole; other keys are an error. A missing or invalid overlay stops the start; on reload it keeps that network's previous settings and logs why. Hostnames and ids need a restart."
        }
        _ => return None,
    })
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
        _ => "string",
    }
}

fn default_text(v: &Value) -> String {
    match v {
        Value::Null => "(unset)".into(),
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// The reference of the tree with sections `S` as Markdown: `intro`, then a table of every key;
/// `Err` names the keys without a description.
pub fn reference_markdown<S: Sections>(intro: &str) -> Result<String, Vec<String>> {
    let mut out = format!(
        "{intro}| key | type | default | environment variable | description |\n|---|---|---|---|---|\n"
    );
    let mut missing = Vec::new();
    for (path, var, default) in env_var_names::<S>() {
        let desc = describe(&path)
            .or_else(|| S::describe(&path))
            .unwrap_or_else(|| {
                missing.push(path.clone());
                ""
            });
        out.push_str(&format!(
            "| `{path}` | {} | {} | `{var}` | {desc} |\n",
            type_of(&default),
            default_text(&default)
        ));
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NoSections;

    /// The full reference, `docs/configuration.md`, is generated by the server, which knows the
    /// whole tree; here, the domain's part.
    #[test]
    fn every_domain_key_is_described() {
        let text = reference_markdown::<NoSections>("intro\n")
            .unwrap_or_else(|missing| panic!("describe these keys: {missing:?}"));
        assert!(text.starts_with("intro\n| key |"));
        assert!(text.contains("| `db.dsn` | string | `sqlite://talos.db` | `TALOS_DB_DSN` |"));
    }
}
