#![doc = include_str!("../README.md")]
//!
//! # Public API
//!
//! [`Guard`] (a backend: [`Guard::embedded`] or [`Guard::remote`]), [`Require`] (a guard with
//! the scopes a route requires: an actix-web `Transform` with feature `actix`, a tower `Layer`
//! with feature `tower`), [`VerifiedKey`] (what a handler gets), and [`Decision`] / [`Denial`]
//! for callers that check requests themselves ([`Guard::check`]).

mod guard;

#[cfg(feature = "actix")]
mod actix;
#[cfg(feature = "embedded")]
mod embedded;
#[cfg(feature = "tower")]
mod tower;

pub use guard::{ClientIp, Decision, Denial, Guard, Require, VerifiedKey};

#[cfg(feature = "actix")]
pub use actix::{Denied, RequireMiddleware};
#[cfg(feature = "tower")]
pub use tower::{GuardBody, RequireService};
