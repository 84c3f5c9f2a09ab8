#![doc = include_str!("../README.md")]

pub mod admin_auth;
pub mod audit;
pub mod config;
mod error;
pub mod network;
pub mod runtime;
mod service;

pub use error::{CoreError, Result};
pub use service::*;
pub use talos_storage::{
    KeyKind, KeyRecord, KeyStatus, RateLimitPolicy, RevocationReason, StoredStatus, Visibility,
};
