//! The in-process backend: `talos_core::Service::verify` (cache, storage, rate limits, IP
//! restrictions, as the server does), its outcome mapped to the verify response that
//! `talos_api::gateway::answer` takes, as the server's verify handler maps it.

use std::net::IpAddr;
use std::sync::Arc;

use talos_api::headers::RateLimitHeaders;
use talos_api::{KeyStatus, VerificationErrorCode, VerifyApiKeyResponse};
use talos_core::{Service, VerifyErrorCode, VerifyOutcome, VerifyRequest};
use uuid::Uuid;

pub(crate) struct Embedded {
    pub(crate) service: Arc<Service>,
    pub(crate) network: Uuid,
}

impl Embedded {
    pub(crate) async fn verify(
        &self,
        credential: &str,
        client_ip: Option<IpAddr>,
    ) -> (VerifyApiKeyResponse<'static>, Option<RateLimitHeaders>) {
        let request = VerifyRequest {
            credential: credential.to_string(),
            client_ip,
            ..Default::default()
        };
        let outcome = self.service.verify(self.network, &request).await;
        let limit = rate_limit(&outcome);
        (response(outcome), limit)
    }
}

fn error_code(c: VerifyErrorCode) -> VerificationErrorCode {
    match c {
        VerifyErrorCode::InvalidFormat => VerificationErrorCode::InvalidFormat,
        VerifyErrorCode::Expired => VerificationErrorCode::Expired,
        VerifyErrorCode::Revoked => VerificationErrorCode::Revoked,
        VerifyErrorCode::NotFound => VerificationErrorCode::NotFound,
        VerifyErrorCode::SignatureInvalid => VerificationErrorCode::SignatureInvalid,
        VerifyErrorCode::NoHmacKey | VerifyErrorCode::Internal => VerificationErrorCode::Internal,
        VerifyErrorCode::IpNotAllowed => VerificationErrorCode::IpNotAllowed,
        VerifyErrorCode::RateLimited => VerificationErrorCode::RateLimited,
        VerifyErrorCode::BalanceExhausted => VerificationErrorCode::BalanceExhausted,
        VerifyErrorCode::UsageExceeded => VerificationErrorCode::UsageExceeded,
    }
}

/// The fields the gateway answer reads (identity on success, code and message on failure).
fn response(o: VerifyOutcome) -> VerifyApiKeyResponse<'static> {
    match o.result {
        Ok(v) => VerifyApiKeyResponse {
            is_valid: Some(true),
            is_active: Some(true),
            key_id: v.key_id,
            actor_id: v.actor_id,
            scopes: v.scopes,
            metadata: v.metadata,
            expire_time: v.expire_time,
            status: KeyStatus::Active,
            ..Default::default()
        },
        Err(f) => VerifyApiKeyResponse {
            is_valid: Some(false),
            is_active: Some(false),
            error_code: Some(error_code(f.code)),
            // A storage failure's cause is logged by the service; the client sees the generic text.
            error_message: Some(
                match f.code {
                    VerifyErrorCode::Internal => talos_api::error::INTERNAL_MESSAGE,
                    _ => f.message,
                }
                .into(),
            ),
            ..Default::default()
        },
    }
}

/// The limiter's answer for the key, when it answered for a key with a policy.
fn rate_limit(o: &VerifyOutcome) -> Option<RateLimitHeaders> {
    let r = o.rate_limit.as_ref()?;
    Some(RateLimitHeaders {
        quota: r.policy.quota,
        window_secs: r.policy.window_secs,
        remaining: r.remaining,
        retry_after_secs: r
            .retry_after
            .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
    })
}
