//! The startup block: where the API, the metrics and the OpenAPI document are, and a first
//! command to try. Printed once the listeners are bound, so every URL in it answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The URLs a user can open, from the bound addresses.
pub struct Urls {
    pub api: String,
    pub metrics: Option<String>,
}

/// A URL for a bound address: a wildcard address (0.0.0.0, ::) is not something to type into a
/// browser, so it becomes loopback, which reaches the same listener from this machine.
fn base(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

impl Urls {
    pub fn new(api: SocketAddr, metrics: Option<SocketAddr>) -> Urls {
        Urls {
            api: base(api),
            metrics: metrics.map(|m| format!("{}/metrics", base(m))),
        }
    }

    pub fn openapi(&self) -> String {
        format!("{}/openapi.json", self.api)
    }

    /// The block for a terminal: short, every line something to open or run.
    pub fn block(&self) -> String {
        let api = &self.api;
        let metrics = self.metrics.as_deref().unwrap_or(
            "not served (the metrics port could not be bound; health is on the API port)",
        );
        format!(
            "\n\
             Talos is ready.\n\
             \x20 API      {api}\n\
             \x20 OpenAPI  {openapi}\n\
             \x20 Metrics  {metrics}\n\
             \x20 Health   {api}/health/alive, {api}/health/ready\n\
             Try:\n\
             \x20 curl -s -X POST {api}/v2alpha1/admin/issuedApiKeys -d '{{\"name\":\"first-key\",\"actor_id\":\"me\",\"ttl\":\"24h\"}}'\n\
             \x20 talos keys issue first-key --actor me -e {api}\n\
             Settings: docs/configuration.md (TALOS_* variables); stop with Ctrl-C.\n",
            openapi = self.openapi(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_show_loopback() {
        let u = Urls::new(
            "0.0.0.0:8080".parse().unwrap(),
            Some("[::]:4422".parse().unwrap()),
        );
        assert_eq!(u.api, "http://127.0.0.1:8080");
        assert_eq!(u.metrics.as_deref(), Some("http://[::1]:4422/metrics"));
        assert_eq!(u.openapi(), "http://127.0.0.1:8080/openapi.json");
        let u = Urls::new("10.1.2.3:4420".parse().unwrap(), None);
        assert_eq!(u.api, "http://10.1.2.3:4420");
        assert!(u.block().contains("Metrics  not served"));
    }
}
