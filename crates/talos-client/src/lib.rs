#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod error;
pub mod types;
mod wire;

pub use client::{Client, Response, VerifyOptions};
pub use error::{ApiErrorContext, ClientError, ErrorDetail};
pub use types::*;

/// The default endpoint of a local server (`serve.http.port` 4420).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4420";
