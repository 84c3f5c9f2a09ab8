//! The CI steps that are more than one command: `services` (what `.ci/run` needs installed and
//! running), `conformance` (the shared suite on SQLite and PostgreSQL), `schemathesis`
//! (property-based checks of the live API against docs/openapi.json) and `gateway-proxy` (gateway
//! verify behind nginx and Caddy, configured as docs/integrations says). `.ci/run` lists the steps.

pub mod conformance;
pub mod gateway_proxy;
pub mod schemathesis;
pub mod services;
