#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod keyring;
mod page_token;
mod secret;

pub use keyring::{
    CURSOR_KEY_DOMAIN, KeyEntry, Keyring, MACAROON_ROOT_KEY_DOMAIN, SECRET_ID_DOMAIN, derive_key,
};
pub use page_token::{Cursor, MAX_PAGE_TOKEN_LEN, open_page_token, seal_page_token};
pub use secret::{MIN_SECRET_LEN, RetiredSecret, Secret};

/// Errors of this crate. No variant ever carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// The keyring has no current secret (`secrets.hmac.current` is unset).
    #[error("project has no HMAC key configured")]
    NoCurrentKey,
    /// A page token that is not valid base64, does not decrypt under any configured secret, or is malformed.
    #[error("invalid page token")]
    InvalidPageToken,
    /// A page token that decrypts fine but was issued for another network.
    #[error("page token network mismatch")]
    PageTokenNetworkMismatch,
    /// A secret shorter than the required minimum. Carries the config path and lengths, never the value.
    #[error("{path} must be at least {min} characters (got {got})")]
    SecretTooShort {
        /// Config path of the offending secret, e.g. `secrets.hmac.current`.
        path: String,
        /// Required minimum length in characters.
        min: usize,
        /// Actual length in characters.
        got: usize,
    },
}
