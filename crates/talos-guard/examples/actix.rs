//! An actix-web service protected by talos-guard, verifying in-process: `GET /invoices` needs
//! the scope `invoices:read`, `POST /invoices` needs `invoices:write`, `GET /whoami` any valid
//! key (checked by the `VerifiedKey` extractor alone), `GET /health` nothing.
//!
//! Run with a configuration holding the server's `credentials`, `secrets`, `db` and `cache`
//! sections (`TALOS_*` variables apply, as for the server):
//!
//! ```text
//! cargo run -p talos-guard --example actix -- talos.yaml
//! curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8081/invoices
//! ```

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use talos_core::config::{ConfigSource, load};
use talos_guard::{Guard, VerifiedKey};

/// The routes, each with the scopes it requires.
pub fn routes(guard: Guard) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(guard.clone())
            .route("/health", web::get().to(health))
            .route("/whoami", web::get().to(whoami))
            .service(
                web::resource("/invoices")
                    .route(web::get().to(list).wrap(guard.require(["invoices:read"])))
                    .route(
                        web::post()
                            .to(create)
                            .wrap(guard.require(["invoices:write"])),
                    ),
            );
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn whoami(key: VerifiedKey) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"key_id": key.key_id, "actor_id": key.actor_id, "scopes": key.scopes}))
}

async fn list(key: VerifiedKey) -> HttpResponse {
    HttpResponse::Ok().json(json!({"actor_id": key.actor_id, "invoices": []}))
}

async fn create(key: VerifiedKey) -> HttpResponse {
    HttpResponse::Created().json(json!({"created_by": key.actor_id}))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: actix <talos config.yaml>")?;
    let (config, _warnings) = load(&ConfigSource::from_process(Some(path.into())))?;
    let guard = Guard::embedded(Arc::new(talos_core::Service::from_config(&config).await?));
    println!("listening on http://127.0.0.1:8081");
    HttpServer::new(move || App::new().configure(routes(guard.clone())))
        .bind(("127.0.0.1", 8081))?
        .run()
        .await?;
    Ok(())
}
