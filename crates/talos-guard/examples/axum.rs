//! An axum service protected by talos-guard's tower layer, verifying in-process (or, with
//! `--remote URL TOKEN`, by a Talos server): `GET /invoices` needs `invoices:read`,
//! `POST /invoices` needs `invoices:write`, `GET /health` nothing. Handlers read the caller from
//! the request extension `VerifiedKey`.
//!
//! ```text
//! cargo run -p talos-guard --example axum -- talos.yaml
//! cargo run -p talos-guard --example axum -- --remote http://127.0.0.1:8080 "$ADMIN_TOKEN"
//! curl -H "X-API-Key: $KEY" http://127.0.0.1:8082/invoices
//! ```

use std::sync::Arc;

use axum::extract::Extension;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use talos_core::config::{ConfigSource, load};
use talos_guard::{Guard, VerifiedKey};

/// The routes, each with the scopes it requires.
pub fn router(guard: Guard) -> Router {
    // One layer per method: a `route_layer` on a method router covers the methods added before
    // it, so each method gets its own router, merged.
    let read = get(list).route_layer(guard.require(["invoices:read"]));
    let write = post(create).route_layer(guard.require(["invoices:write"]));
    Router::new()
        .route("/invoices", read.merge(write))
        .route("/health", get(|| async { "ok" }))
}

async fn list(Extension(key): Extension<VerifiedKey>) -> Json<Value> {
    Json(json!({"actor_id": key.actor_id, "invoices": []}))
}

async fn create(Extension(key): Extension<VerifiedKey>) -> (StatusCode, Json<Value>) {
    (
        StatusCode::CREATED,
        Json(json!({"created_by": key.actor_id})),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let guard = match args.as_slice() {
        [flag, url, token] if flag == "--remote" => {
            Guard::remote(talos_client::Client::new(url)?.with_token(token)?)
        }
        [path] => {
            let (config, _warnings) = load(&ConfigSource::from_process(Some(path.into())))?;
            Guard::embedded(Arc::new(talos_core::Service::from_config(&config).await?))
        }
        _ => return Err("usage: axum <talos config.yaml> | axum --remote URL TOKEN".into()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8082").await?;
    println!("listening on http://127.0.0.1:8082");
    axum::serve(listener, router(guard)).await?;
    Ok(())
}
