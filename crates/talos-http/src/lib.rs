//! talos-http
