#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod codec;
pub mod enums;
pub mod error;
pub mod gateway;
pub mod headers;
mod health;
mod keys;
pub mod list;
pub mod mask;
mod metering;
pub mod schema;
mod verify;

pub use codec::Rfc3339Micros;
pub use enums::{
    BatchImportErrorCode, KeyStatus, KeyVisibility, RevocationReason, TokenAlgorithm,
    VerificationErrorCode, WireEnum,
};
pub use error::{Code, ErrorDetail, ErrorResponse, ErrorStatus};
pub use gateway::{GatewayDenial, GatewayVerifyRequest, GatewayVerifyResponse};
pub use health::{HealthStatus, VersionInfo};
pub use keys::{
    ApiKey, BatchImportRequest, BatchImportResponse, BatchImportResult, ImportApiKeyRequest,
    ImportApiKeyResponse, ImportedApiKey, IpRestriction, IssueApiKeyRequest, IssueApiKeyResponse,
    IssuedApiKey, JsonObject, ListImportedApiKeysResponse, ListIssuedApiKeysResponse,
    RateLimitPolicy, RateLimitPolicyInput, RevokeApiKeyRequest, RotateApiKeyRequest,
    RotateApiKeyResponse, UpdateApiKeyRequest,
};
pub use list::{ListFilter, ListParams};
pub use mask::{UpdateMask, UpdatePath};
pub use metering::{
    ActorBalance, Credits, CreditsInput, CreditsRefill, CreditsRefillInput, IngestUsageRequest,
    IngestUsageResponse, RefillInterval, SelfIssueApiKeyRequest, SetQuotaRequest, TopUpRequest,
    UsageHistoryResponse, UsageRecord,
};
/// The JSON Schema library behind [`schema`], for building the OpenAPI document.
pub use schemars;
pub use verify::{
    BatchVerifyApiKeysRequest, BatchVerifyApiKeysResponse, DeriveTokenRequest, DeriveTokenResponse,
    Empty, Jwks, JwksResponse, MAX_CREDENTIAL_CHARS, SelfRevokeApiKeyRequest, Token,
    VerifyApiKeyRequest, VerifyApiKeyResponse,
};
