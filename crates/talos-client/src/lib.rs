//! talos-client
