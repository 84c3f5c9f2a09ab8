//! talos-core
