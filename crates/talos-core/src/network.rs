//! Which network (tenant) a request belongs to.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::config::MultitenancyConfig;

/// Resolves a request's `Host` to a network id. Without multitenancy every request belongs to the
/// nil network.
#[derive(Debug, Clone)]
pub struct Networks {
    enabled: bool,
    /// Ordered, so that two equal configurations print alike (`Plan`).
    by_host: BTreeMap<String, Uuid>,
}

impl Networks {
    pub(crate) fn new(cfg: &MultitenancyConfig) -> Self {
        let by_host = cfg
            .networks
            .iter()
            .map(|n| (n.hostname.to_ascii_lowercase(), n.id))
            .collect();
        Networks {
            enabled: cfg.enabled,
            by_host,
        }
    }

    /// Whether requests are assigned to networks by host (`multitenancy.enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The network for a host header value; `None` = unknown host (404 `network not found`).
    pub fn resolve(&self, host: Option<&str>) -> Option<Uuid> {
        if !self.enabled {
            return Some(Uuid::nil());
        }
        let host = normalize_host(host?)?;
        self.by_host.get(&host).copied()
    }
}

/// Lower-cases, strips the port and IPv6 brackets; rejects over-long or non-printable names.
pub(crate) fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 253 || raw.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return None;
    }
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split(']').next()?
    } else if raw.matches(':').count() == 1 {
        raw.split(':').next()?
    } else {
        raw
    };
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalize() {
        for (raw, want) in [
            ("Example.COM", Some("example.com")),
            ("example.com:8080", Some("example.com")),
            ("[::1]:4420", Some("::1")),
            ("::1", Some("::1")),
            ("", None),
            ("bad\u{7}host", None),
        ] {
            assert_eq!(normalize_host(raw).as_deref(), want, "{raw:?}");
        }
    }
}
