//! Request and response messages of the Talos `v2alpha1` API: the wire types of `talos-api`,
//! re-exported.
//!
//! Responses decode leniently (unknown fields ignored, `null` read as the zero value, int64 as a
//! number or a string, unknown enum values as `…_UNSPECIFIED`); requests skip unset fields so that
//! the server applies its own defaults (for instance `ttl` falls back to
//! `credentials.api_keys.default_ttl` only when absent).

pub use talos_api::{
    ActorBalance, Credits, CreditsInput, CreditsRefill, CreditsRefillInput, IngestUsageRequest,
    IngestUsageResponse, RefillInterval, SelfIssueApiKeyRequest, SetQuotaRequest, TopUpRequest,
    UsageHistoryResponse, UsageRecord,
};
pub use talos_api::{
    ApiKey, BatchImportErrorCode, BatchImportRequest, BatchImportResponse, BatchImportResult,
    BatchVerifyApiKeysRequest, BatchVerifyApiKeysResponse, DeriveTokenRequest, DeriveTokenResponse,
    Empty, HealthStatus, ImportApiKeyRequest, ImportApiKeyResponse, ImportedApiKey, IpRestriction,
    IssueApiKeyRequest, IssueApiKeyResponse, IssuedApiKey, JsonObject, Jwks, JwksResponse,
    KeyStatus, KeyVisibility, ListImportedApiKeysResponse, ListIssuedApiKeysResponse, ListParams,
    RateLimitPolicy, RateLimitPolicyInput, RevocationReason, RevokeApiKeyRequest,
    RotateApiKeyRequest, RotateApiKeyResponse, SelfRevokeApiKeyRequest, Token, TokenAlgorithm,
    UpdateApiKeyRequest, UpdatePath, VerificationErrorCode, VerifyApiKeyRequest,
    VerifyApiKeyResponse, VersionInfo,
};
