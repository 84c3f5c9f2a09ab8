//! talos-cache
