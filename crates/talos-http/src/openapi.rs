//! The OpenAPI 3 document, generated from the endpoint table and the schemas below. Served at
//! `/openapi.json` and committed as `docs/openapi.json` (a test fails when it drifts).

use serde_json::{Map, Value, json};

use crate::endpoints::{ENDPOINTS, Method};

fn obj(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": props, "required": required })
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn enum_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

const STATUS: &[&str] = &[
    "KEY_STATUS_UNSPECIFIED",
    "KEY_STATUS_ACTIVE",
    "KEY_STATUS_REVOKED",
    "KEY_STATUS_EXPIRED",
];
const VISIBILITY: &[&str] = &[
    "KEY_VISIBILITY_UNSPECIFIED",
    "KEY_VISIBILITY_SECRET",
    "KEY_VISIBILITY_PUBLIC",
];
const REASONS: &[&str] = &[
    "REVOCATION_REASON_UNSPECIFIED",
    "REVOCATION_REASON_KEY_COMPROMISE",
    "REVOCATION_REASON_AFFILIATION_CHANGED",
    "REVOCATION_REASON_SUPERSEDED",
    "REVOCATION_REASON_PRIVILEGE_WITHDRAWN",
];
const VERIFY_ERRORS: &[&str] = &[
    "VERIFICATION_ERROR_INVALID_FORMAT",
    "VERIFICATION_ERROR_EXPIRED",
    "VERIFICATION_ERROR_REVOKED",
    "VERIFICATION_ERROR_NOT_FOUND",
    "VERIFICATION_ERROR_SIGNATURE_INVALID",
    "VERIFICATION_ERROR_INTERNAL",
    "VERIFICATION_ERROR_IP_NOT_ALLOWED",
    "VERIFICATION_ERROR_RATE_LIMITED",
];
const BATCH_ERRORS: &[&str] = &[
    "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INVALID_ARGUMENT",
    "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_ALREADY_EXISTS",
    "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_FAILED_PRECONDITION",
    "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_INTERNAL",
    "BATCH_CREATE_IMPORTED_API_KEYS_ERROR_RESOURCE_EXHAUSTED",
];

fn schemas() -> Value {
    let s = json!({"type": "string"});
    let t = json!({"type": "string", "format": "date-time"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let meta = json!({"type": "object", "additionalProperties": true});
    let int64 =
        json!({"type": "string", "pattern": "^-?[0-9]+$", "description": "int64, as a string"});
    let key_input = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "actor_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "scopes": {"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1, "maxLength": 100}},
        "metadata": meta,
        "ttl": {"type": "string", "description": "720h, 1h30m, 86400s, 1d, 1w, 1mo, 1y, 1y6mo"},
        "rate_limit_policy": r("RateLimitPolicyInput"),
        "ip_restriction": r("IpRestriction"),
        "visibility": enum_of(VISIBILITY),
        "request_id": {"type": "string", "maxLength": 36},
    });
    let mut import_input = key_input.as_object().cloned().unwrap_or_default();
    import_input.insert(
        "raw_key".into(),
        json!({"type": "string", "minLength": 1, "maxLength": 4096}),
    );
    let api_key_props = json!({
        "key_id": s, "name": s, "actor_id": s, "scopes": strings, "metadata": meta,
        "status": enum_of(STATUS), "create_time": t, "update_time": t, "expire_time": t, "last_used_time": t,
        "rate_limit_policy": r("RateLimitPolicy"), "revocation_reason": enum_of(REASONS),
        "revocation_description": s, "ip_restriction": r("IpRestriction"), "visibility": enum_of(VISIBILITY),
    });
    let mut import_resp = api_key_props.as_object().cloned().unwrap_or_default();
    import_resp.insert("imported_api_key".into(), r("ApiKey"));
    let verify_props = json!({
        "is_valid": {"type": "boolean"}, "is_active": {"type": "boolean"}, "key_id": s, "actor_id": s,
        "scopes": strings, "metadata": meta, "expire_time": t, "issuer": s, "status": enum_of(STATUS),
        "visibility": enum_of(VISIBILITY), "rate_limit_policy": r("RateLimitPolicy"),
        "rate_limit_remaining": int64, "rate_limit_reset_time": t,
        "error_code": enum_of(VERIFY_ERRORS), "error_message": s,
    });
    let jwk = json!({"type": "object", "properties": {"kty": s, "crv": s, "x": s, "kid": s, "use": s, "alg": s}, "required": ["kty"]});
    json!({
        "ApiKey": obj(api_key_props, &["key_id", "name", "actor_id", "scopes", "metadata", "status", "create_time", "update_time", "visibility"]),
        "RateLimitPolicy": obj(json!({"quota": int64, "window": s, "unit": s}), &["quota", "window"]),
        "RateLimitPolicyInput": obj(json!({
            "quota": {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
            "window": {"type": "string", "description": "at least 1s, e.g. 60s or 1m"},
            "unit": enum_of(&["requests", "content-bytes", "concurrent-requests"]),
        }), &["quota", "window"]),
        "IpRestriction": obj(json!({"allowed_cidrs": {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 50}}}), &[]),
        "IssueRequest": obj(key_input, &["name", "actor_id"]),
        "IssueResponse": obj(json!({"issued_api_key": r("ApiKey"), "secret": s}), &["issued_api_key", "secret"]),
        "ImportRequest": obj(Value::Object(import_input), &["raw_key", "name", "actor_id"]),
        "ImportResponse": obj(Value::Object(import_resp), &["key_id", "imported_api_key"]),
        "RotateRequest": obj(json!({
            "name": s, "scopes": strings, "metadata": meta, "rate_limit_policy": r("RateLimitPolicyInput"),
            "ip_restriction": r("IpRestriction"), "visibility": enum_of(VISIBILITY),
        }), &[]),
        "RotateResponse": obj(json!({"issued_api_key": r("ApiKey"), "secret": s, "old_issued_api_key": r("ApiKey")}),
            &["issued_api_key", "secret", "old_issued_api_key"]),
        "UpdateRequest": obj(json!({
            "name": s, "scopes": strings, "metadata": meta, "rate_limit_policy": r("RateLimitPolicyInput"),
            "ip_restriction": r("IpRestriction"),
            "update_mask": {"oneOf": [{"type": "string"}, obj(json!({"paths": strings}), &[])]},
        }), &[]),
        "RevokeRequest": obj(json!({"reason": enum_of(REASONS), "reason_text": s, "description": s}), &[]),
        "ListIssuedApiKeysResponse": obj(json!({"issued_api_keys": {"type": "array", "items": r("ApiKey")}, "next_page_token": s}),
            &["issued_api_keys", "next_page_token"]),
        "ListImportedApiKeysResponse": obj(json!({"imported_api_keys": {"type": "array", "items": r("ApiKey")}, "next_page_token": s}),
            &["imported_api_keys", "next_page_token"]),
        "BatchImportRequest": obj(json!({
            "requests": {"type": "array", "minItems": 1, "maxItems": 1000, "items": r("ImportRequest")},
            "keys": {"type": "array", "minItems": 1, "maxItems": 1000, "items": r("ImportRequest")},
        }), &[]),
        "BatchImportResult": obj(json!({"index": {"type": "integer"}, "imported_api_key": r("ApiKey"),
            "error_code": enum_of(BATCH_ERRORS), "error_message": s}), &["index"]),
        "BatchImportResponse": obj(json!({"results": {"type": "array", "items": r("BatchImportResult")},
            "success_count": {"type": "integer"}, "failure_count": {"type": "integer"}}), &["results", "success_count", "failure_count"]),
        "VerifyRequest": obj(json!({"credential": {"type": "string", "maxLength": 4096}}), &["credential"]),
        "VerifyResponse": obj(verify_props, &["is_valid", "is_active", "key_id", "actor_id", "scopes", "metadata", "issuer", "status", "visibility"]),
        "BatchVerifyRequest": obj(json!({"requests": {"type": "array", "minItems": 1, "maxItems": 100, "items": r("VerifyRequest")}}), &["requests"]),
        "BatchVerifyResponse": obj(json!({"results": {"type": "array", "items": r("VerifyResponse")}}), &["results"]),
        "DeriveRequest": obj(json!({
            "credential": {"type": "string", "minLength": 1, "maxLength": 4096},
            "algorithm": enum_of(&["TOKEN_ALGORITHM_UNSPECIFIED", "TOKEN_ALGORITHM_JWT", "TOKEN_ALGORITHM_MACAROON"]),
            "ttl": s, "scopes": strings, "custom_claims": meta,
        }), &["credential"]),
        "DeriveResponse": obj(json!({"token": obj(json!({"token": s, "expire_time": t, "scopes": strings, "claims": meta}),
            &["token", "expire_time", "scopes", "claims"])}), &["token"]),
        "SelfRevokeRequest": obj(json!({"credential": {"type": "string", "minLength": 1}, "reason": enum_of(REASONS)}), &["credential"]),
        "Empty": obj(json!({}), &[]),
        "Jwks": obj(json!({"keys": {"type": "array", "items": jwk}}), &["keys"]),
        "JwksResponse": obj(json!({"jwks": r("Jwks"), "keys": {"type": "array", "items": jwk}}), &["jwks", "keys"]),
        "Status": obj(json!({"status": s}), &["status"]),
        "Version": obj(json!({"version": s, "commit": s, "build_time": s, "config_hash": s}), &["version"]),
        "Error": obj(json!({"error": obj(json!({
            "code": {"type": "integer"}, "message": s, "status": s,
            "details": {"type": "array", "items": obj(json!({"@type": s, "reason": s, "domain": s, "metadata": meta}), &["reason"])},
        }), &["code", "message", "status", "details"])}), &["error"]),
    })
}

fn response(code: u16, schema: Option<&str>) -> (String, Value) {
    let description = match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Invalid argument",
        401 => "Unauthenticated",
        402 => "Quota exceeded",
        403 => "Permission denied",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "Conflict",
        413 => "Body over 4 MiB",
        500 => "Internal error",
        _ => "Unavailable",
    };
    let mut resp = json!({ "description": description });
    if let Some(name) = schema {
        resp["content"] = json!({ "application/json": { "schema": r(name) } });
    }
    (code.to_string(), resp)
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for e in ENDPOINTS {
        let mut responses = Map::new();
        let (code, resp) = response(e.success.0, e.success.1);
        responses.insert(code, resp);
        let mut errors: Vec<u16> = vec![400, 404, 405, 500, 503];
        if e.method != Method::Get && e.method != Method::Delete {
            errors.push(413);
        }
        errors.extend(e.errors);
        if e.path == "/health/ready" {
            errors = vec![503];
        }
        errors.sort_unstable();
        errors.dedup();
        for code in errors {
            let schema = if e.path == "/health/ready" {
                None
            } else {
                Some("Error")
            };
            let (c, r) = response(code, schema);
            responses.insert(c, r);
        }
        let mut params: Vec<Value> = Vec::new();
        if e.path.contains("{key_id}") {
            params.push(json!({"name": "key_id", "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        for (name, ty) in e.query {
            params.push(
                json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}}),
            );
        }
        let mut op = json!({
            "operationId": e.operation_id,
            "summary": e.summary,
            "tags": [e.tag],
            "responses": responses,
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(req) = e.request {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": r(req)}}});
        }
        let item = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        item[e.method.as_str()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Talos",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "API key management: issue, verify, rotate, revoke, import, derive. Wire-compatible with Ory Talos.",
        },
        "paths": paths,
        "components": { "schemas": schemas() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_is_current() {
        let text = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        if std::env::var_os("TALOS_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/openapi.json is stale: run TALOS_BLESS=1 cargo test -p talos-http openapi"
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
        }
    }
}
