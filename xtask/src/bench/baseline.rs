//! The baseline: what actix-web itself costs for a verify-shaped request. It parses the same
//! JSON body Talos parses and answers a fixed JSON body of the same shape and size as a valid
//! verify response, with no crypto, no cache and no storage. Talos figures are ratios to it.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;

pub const VERIFY_PATH: &str = "/v2alpha1/admin/apiKeys:verify";

/// A valid verify answer as Talos writes it for a seeded key.
const BODY: &str = r#"{"is_valid":true,"is_active":true,"key_id":"01990c3e-8f4a-7d2b-9c1e-5a6b7c8d9e0f","actor_id":"bench-user","scopes":["read"],"metadata":{},"expire_time":"2030-01-01T00:00:00Z","issuer":"http://localhost:8080","status":"KEY_STATUS_ACTIVE","visibility":"KEY_VISIBILITY_UNSPECIFIED"}"#;

#[derive(Deserialize)]
struct VerifyIn {
    credential: Option<String>,
}

async fn verify(body: web::Json<VerifyIn>) -> HttpResponse {
    std::hint::black_box(body.credential.as_deref());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(BODY)
}

async fn alive() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

pub fn serve(port: u16, workers: usize) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let mut server = HttpServer::new(|| {
            App::new()
                .route(VERIFY_PATH, web::post().to(verify))
                .route("/health/alive", web::get().to(alive))
        })
        .bind(("127.0.0.1", port))?;
        if workers > 0 {
            server = server.workers(workers);
        }
        server.run().await
    })?;
    Ok(())
}
