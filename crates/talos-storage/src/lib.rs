//! talos-storage
