//! The configuration reference (`docs/configuration.md`), generated from the typed tree so it
//! cannot drift: every leaf with its type, default and environment variable.

use serde_json::Value;

use super::env_var_names;

/// One line of prose per key. A key missing here fails the drift test.
fn describe(path: &str) -> Option<&'static str> {
    Some(match path {
        "serve.http.host" => "Address the API listens on.",
        "serve.http.port" => "Port of the API (the quickstart uses 8080).",
        "serve.http.trust_forwarded_host" => {
            "Take the network's hostname from `X-Forwarded-Host` (behind a trusted proxy)."
        }
        "serve.http.client_ip_source" => {
            "Where the client IP comes from: empty/`REMOTE_ADDR`, `CF_CONNECTING_IP`, `X_FORWARDED_FOR` (leftmost), `X_REAL_IP`, `TRUE_CLIENT_IP`."
        }
        "serve.http.request_log.exclude_health_endpoints" => {
            "Leave `/health/*` out of the request log."
        }
        "serve.http.cors.enabled" => {
            "Browser access: when false, any request carrying an `Origin` is refused (403 `ORIGIN_NOT_ALLOWED`) except `GET` of the JWKS; when true, only `allowed_origins`."
        }
        "serve.http.cors.allowed_origins"
        | "serve.http.cors.allowed_methods"
        | "serve.http.cors.allowed_headers"
        | "serve.http.cors.exposed_headers"
        | "serve.http.cors.allow_credentials"
        | "serve.http.cors.max_age"
        | "serve.http.cors.debug" => {
            "CORS setting (`*` in `allowed_origins` allows any origin; `debug` is accepted and ignored). With CORS enabled, an origin that is not `scheme://host[:port]`, a bad method or a bad header name is a startup error."
        }
        "serve.http.admin_auth.tokens" => {
            "Admin API bearer tokens `[{name, sha256, scopes}]` (as env, a JSON list); empty = the admin API is open. Scopes: `admin`, `keys:read`, `keys:write`, `keys:verify`, `usage:write`. Reloadable."
        }
        "serve.http.allowed_hosts" => {
            "`Host` names the API answers (with or without `:port`); others get 421 `HOST_NOT_ALLOWED`. Unset: on a loopback bind only `localhost`, `127.0.0.1`, `[::1]` (any port), else any host. Multitenancy hostnames are always allowed."
        }
        "serve.http.tls.cert_file" => {
            "PEM certificate chain (leaf first) of the API port (a relative path is taken from the working directory); with `key_file`, the API serves HTTPS only (rustls, TLS 1.2 and 1.3). Both or neither. Re-read within about a second when the file changes; a broken new pair keeps the old one. The metrics port stays plain HTTP."
        }
        "serve.http.tls.key_file" => {
            "PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1; unencrypted). Re-read with the certificate."
        }
        "serve.http.workers" => "HTTP worker threads; 0 = one per CPU core.",
        "serve.http.request_timeout" => {
            "Longest a request may take: after it the client gets 503 with reason `DEADLINE_EXCEEDED` (the work still finishes in the background, so a mutation is never half done)."
        }
        "serve.http.client_timeout" => {
            "Longest the request headers may take to arrive, and separately the request body (counted from when the handler starts reading). A late head closes the connection; a late body is answered 408 with reason `REQUEST_TIMEOUT` and the connection is closed."
        }
        "serve.http.drain_time" => {
            "After SIGTERM/SIGINT: how long the server keeps serving while `/health/ready` answers 503 and every response carries `Connection: close`, so load balancers and keep-alive clients move away before it stops accepting connections and finishes the requests in flight."
        }
        "serve.http.max_inflight" => {
            "Requests in flight per HTTP worker beyond which a new request is answered at once with 503, reason `OVERLOADED` and `Retry-After: 1`, instead of queueing. The metrics port (`/metrics`, `/health/*`) is never shed. `0` = no limit."
        }
        "serve.metrics.host" => "Address of the metrics port (`/metrics`, `/health/*`).",
        "serve.metrics.port" => "Port of `/metrics` and the health endpoints.",
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
            "JWK sets (`base64://…` or `file://…`) holding Ed25519 keys."
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
        "cache.memory.num_counters" => "Accepted for compatibility (admission is handled by moka).",
        "cache.redis.mode" => {
            "`standalone` (one server), `cluster` (Redis Cluster; keys are hash-tagged so every script touches one slot) or `sentinel` (a Sentinel-managed primary)."
        }
        "cache.redis.addrs" => {
            "Redis `host:port` addresses: the server (standalone: the first is used), seed nodes (cluster: list several, the invalidation subscriber rotates through them), or the sentinels."
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
            "Accepted for compatibility: each node multiplexes commands over one connection (plus one for pub/sub)."
        }
        "cache.redis.timeout" => {
            "Bounds every Redis connect and command; a slower Redis counts as unavailable (verify falls back to the database)."
        }
        "cache.redis.min_idle_conns" => "Accepted for compatibility (see `pool_size`).",
        "cache.redis.conn_max_idle_time" => "Accepted for compatibility (see `pool_size`).",
        "cache.redis.conn_max_lifetime" => "Accepted for compatibility (see `pool_size`).",
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
        "rate_limit.enabled" => "Enforce per-key `rate_limit_policy` on verify (hot-reloadable).",
        "rate_limit.backend" => "`memory` (per node) or `redis` (shared by all nodes).",
        "rate_limit.fail_closed" => {
            "When the limiter is unreachable: false = allow (fail open), true = deny."
        }
        "quota.api_keys_max" => "Maximum active keys per network; 0 = no cap.",
        "last_used.queue_size"
        | "last_used.flush_size"
        | "last_used.flush_interval"
        | "last_used.num_workers" => {
            "Accepted for compatibility; `last_used_time` is written at most once per key per day."
        }
        "log.level" => {
            "`trace`, `debug`, `info`, `warn`, `error`, or a tracing filter such as `info,talos::audit=info`."
        }
        "log.format" => "`text` or `json`.",
        "tracing.enabled"
        | "tracing.service_name"
        | "tracing.exporter"
        | "tracing.endpoint"
        | "tracing.sample_rate"
        | "tracing.service_version"
        | "tracing.environment" => {
            "OpenTelemetry settings (accepted; export is not implemented yet)."
        }
        "multitenancy.enabled" => "Serve several networks, chosen by the request's `Host`.",
        "multitenancy.networks" => "`[{hostname, id, config_path}]`; as env, a JSON list.",
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

/// The reference as Markdown; `Err` names keys without a description.
pub fn reference_markdown() -> Result<String, Vec<String>> {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the configuration types (`crates/talos-core/src/config`); a test fails when this file drifts.\n\
         Regenerate with `TALOS_BLESS=1 cargo test -p talos-core config_reference`.\n\n\
         Talos reads one YAML file (`--config`) and then `TALOS_*` environment variables, which win. Each key's\n\
         variable is `TALOS_` + the path upper-cased with `.` → `_`. Lists are comma-separated, or JSON when the\n\
         value starts with `[`; an empty variable counts as unset. Durations take `720h`, `1h30m`, `86400s`, `1d`,\n\
         `1w`, `1mo`, `1y`. Unknown keys in the file are an error. `secrets.default` and `secrets.pagination`\n\
         (from the quickstart) are accepted and ignored with a warning.\n\n\
         Reloaded on file change, as one atomic swap: `secrets.*`, `credentials.*`, `cache.ttl`, `cache.enabled`,\n\
         `rate_limit.enabled`, `quota.*`, `serve.http.admin_auth.tokens`. Everything else needs a restart; the\n\
         certificate and key files named by `serve.http.tls.*` are re-read whenever their contents change.\n\n\
         | key | type | default | environment variable | description |\n|---|---|---|---|---|\n",
    );
    let mut missing = Vec::new();
    for (path, var, default) in env_var_names() {
        let desc = describe(&path).unwrap_or_else(|| {
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

    #[test]
    fn config_reference_is_current() {
        let text = reference_markdown()
            .unwrap_or_else(|missing| panic!("describe these keys: {missing:?}"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        if std::env::var_os("TALOS_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/configuration.md is stale: run TALOS_BLESS=1 cargo test -p talos-core config_reference"
        );
    }
}
