#![doc = include_str!("../README.md")]
//!
//! # Public API
//!
//! Everything public is listed here, by purpose; the rest is `pub(crate)`.

pub mod audit;
mod clock;
pub mod config;
mod domain_metrics;
mod error;
mod network;
mod runtime;
mod service;

// The service: build it from a config (through its `Plan`, or from a store and a cache), then
// call its operations.
pub use error::{CoreError, Result};
pub use service::{NotReady, Plan, Service};

// What the operations take: plain data whose public fields are the contract.
pub use service::{
    CreditsInput, DeriveRequest, ImportRequest, KeySpec, ListRequest, RateLimitInput,
    RevokeRequest, RotateRequest, SelfIssueRequest, TokenAlgorithm, UpdateField, UpdateRequest,
    UsageInput, VerifyRequest,
};

// What the operations answer, likewise plain data.
pub use service::{
    BalanceStatus, BatchItem, CacheMode, CacheStatus, DerivedToken, Ingested, IssuedKey, Metering,
    Page, RateLimitStatus, Rotated, Verified, VerifyErrorCode, VerifyFailure, VerifyOutcome,
};

// A key as stored: the records the operations return, re-exported so that callers need no
// direct dependency on talos-storage.
pub use talos_storage::{
    ActorBalance, Credits, KeyKind, KeyRecord, KeyStatus, RateLimitPolicy, Refill, RefillInterval,
    RevocationReason, StoredStatus, UsageRecord, Visibility,
};

// Time: the service reads it from a `Clock` (`Service::with_clock`; tests move it).
pub use clock::{Clock, SystemClock};

// The largest batch `Service::verify_batch` accepts.
pub use service::MAX_BATCH_VERIFY;

// Extension point: `Service::new` takes any `talos_cache::KeyCache` of this value type.
pub use service::CachedKey;

// Multitenancy: which network a request's host belongs to (`Service::networks`).
pub use network::Networks;

// A log-line limiter the HTTP layer shares, so that a flood of refused requests cannot flood
// the log.
pub use service::LogThrottle;
