#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod cidr;
pub mod claims;
pub mod duration;
pub mod imported;
pub mod issued;
pub mod jwt;
pub mod macaroon;
pub mod route;

mod b64;
mod base58;

pub use claims::{DerivedClaims, RESERVED_CLAIMS, Visibility, check_times, strip_reserved};
pub use issued::ParsedKey;
pub use route::{Credential, classify, looks_issued};
pub use talos_secrets;

/// Errors of this crate. Messages never contain secrets or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// A duration that does not follow the TTL grammar, is zero or negative, or overflows.
    #[error(
        "invalid duration {input:?}: use a positive duration such as 720h, 1h30m, 86400s, 1d, 1w, 1mo, 1y or 1y6mo"
    )]
    InvalidDuration {
        /// The offending input (cut to 64 characters).
        input: String,
    },
    /// A string that is neither an IP address nor a CIDR block.
    #[error(
        "invalid CIDR {0:?}: use an IP address or a CIDR block such as 10.0.0.0/8 or 2001:db8::/32"
    )]
    InvalidCidr(String),
    /// A JWK Set that cannot be used.
    #[error("invalid JWKS: {0}")]
    InvalidJwks(String),
    /// A `base64://` URL that cannot be decoded.
    #[error("invalid base64:// URL: {0}")]
    InvalidBase64Url(&'static str),
    /// No key of the JWKS can sign.
    #[error("no JWT signing key configured")]
    NoSigningKey,
    /// `signing_key_id` names no key with a private part.
    #[error("JWT signing key {0:?} not found among the configured private keys")]
    SigningKeyNotFound(String),
    /// A token (JWT or macaroon) that is not well formed.
    #[error("malformed token: {0}")]
    MalformedToken(&'static str),
    /// A well-formed token whose signature does not verify under any configured key.
    #[error("token signature invalid")]
    SignatureInvalid,
    /// A token with a valid signature but unusable claims (missing, wrong type, wrong `tty`, …).
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    /// `exp` is not in the future.
    #[error("token expired")]
    TokenExpired,
    /// `nbf` is further in the future than the allowed clock skew.
    #[error("token not yet valid")]
    TokenNotYetValid,
    /// An error of the keyring (e.g. no current secret).
    #[error(transparent)]
    Secrets(#[from] talos_secrets::SecretsError),
}

/// Result alias of this crate.
pub type Result<T, E = CredentialsError> = std::result::Result<T, E>;
