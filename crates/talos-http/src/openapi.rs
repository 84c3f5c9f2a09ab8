//! The OpenAPI 3 document, generated from the endpoint table (paths and operations) and the wire
//! types of `talos-api` (schemas, derived with schemars). Served at `/openapi.json` and committed
//! as `docs/openapi.json` (a test fails when it drifts).

use serde_json::{Map, Value, json};
use talos_api::schema::{self, SchemaFn};
use talos_api::schemars::SchemaGenerator;

use crate::endpoints::{ENDPOINTS, Method};

fn response(g: &mut SchemaGenerator, code: u16, schema: Option<SchemaFn>) -> (String, Value) {
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
        429 => "Rate limited",
        500 => "Internal error",
        _ => "Unavailable",
    };
    let mut resp = json!({ "description": description });
    if let Some(schema) = schema {
        resp["content"] = json!({ "application/json": { "schema": schema(g).to_value() } });
    }
    (code.to_string(), resp)
}

/// The whole document.
pub fn document() -> Value {
    let mut g = schema::generator();
    let mut paths: Map<String, Value> = Map::new();
    for e in ENDPOINTS {
        let mut responses = Map::new();
        let (code, resp) = response(&mut g, e.success.0, e.success.1);
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
            let schema: Option<SchemaFn> = if e.path == "/health/ready" {
                None
            } else if e.errors.contains(&code) && e.denial.is_some() {
                e.denial
            } else {
                Some(schema::of::<talos_api::ErrorResponse>)
            };
            let (c, r) = response(&mut g, code, schema);
            responses.insert(c, r);
        }
        let mut params: Vec<Value> = Vec::new();
        for name in ["key_id", "actor_id", "path"] {
            if e.path.contains(&format!("{{{name}}}")) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for (name, ty) in e.query {
            let schema = match *ty {
                "array" => json!({"type": "array", "items": {"type": "string"}}),
                ty => json!({"type": ty}),
            };
            params.push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
        }
        for name in e.headers {
            params.push(json!({"name": name, "in": "header", "required": false, "schema": {"type": "string"}}));
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
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": req(&mut g).to_value()}}});
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
        "components": { "schemas": g.take_definitions(true) },
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
