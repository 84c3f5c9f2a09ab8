//! talos-credentials
