#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod error;
mod response;
pub mod types;

pub use client::Client;
pub use error::{ApiErrorContext, ClientError, ErrorDetail};
pub use response::{Response, VerifyOptions};
pub use types::*;

/// The default endpoint of a local server (`serve.http.port` 4420).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4420";
