//! talos-secrets
