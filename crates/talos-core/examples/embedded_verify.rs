//! Embedding Talos: build the service from a configuration and verify keys in-process, with no
//! HTTP hop. Run with `cargo run -p talos-core --example embedded_verify`.

use talos_core::config::load_str;
use talos_core::{KeySpec, Service, VerifyRequest};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Any configuration works; here an in-memory SQLite database and an in-process cache.
    let yaml = r#"
credentials:
  issuer: "https://auth.example.com"
  api_keys: { default_ttl: "24h" }
secrets:
  hmac: { current: "an-example-secret-of-at-least-32-characters" }
db: { dsn: "sqlite::memory:" }
cache: { type: memory, ttl: "1m" }
"#;
    let (config, _warnings) = load_str(yaml, "inline", &Default::default())?;
    let service = Service::from_config(&config).await?;
    let network = Uuid::nil();

    let issued = service
        .issue(
            network,
            KeySpec {
                name: "billing".into(),
                actor_id: "svc-billing".into(),
                scopes: vec!["invoices:read".into()],
                ..Default::default()
            },
        )
        .await?;

    let ok = service
        .verify(
            network,
            &VerifyRequest {
                credential: issued.secret.clone(),
                ..Default::default()
            },
        )
        .await;
    let identity = ok
        .result
        .map_err(|f| format!("expected a valid key, got {f:?}"))?;
    println!(
        "valid key for actor {} with scopes {:?}",
        identity.actor_id, identity.scopes
    );

    let forged = service
        .verify(
            network,
            &VerifyRequest {
                credential: format!("{}x", issued.secret),
                ..Default::default()
            },
        )
        .await;
    let failure = forged.result.err().ok_or("a forged key must not verify")?;
    println!(
        "forged key rejected: {} ({})",
        failure.code.label(),
        failure.message
    );
    Ok(())
}
