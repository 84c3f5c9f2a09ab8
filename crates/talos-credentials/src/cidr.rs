//! IP allowlists: CIDR parsing and matching, IPv4 and IPv6.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use crate::CredentialsError;

/// Parses one CIDR block or bare IP address (a bare address is a /32 or /128). Surrounding whitespace is ignored.
/// IPv4-mapped IPv6 blocks (`::ffff:10.0.0.0/104`) are normalised to IPv4.
pub fn parse_cidr(s: &str) -> Result<IpNet, CredentialsError> {
    let t = s.trim();
    let net = if t.contains('/') {
        t.parse::<IpNet>().ok()
    } else {
        t.parse::<IpAddr>().ok().map(IpNet::from)
    };
    let net = net.ok_or_else(|| CredentialsError::InvalidCidr(s.chars().take(64).collect()))?;
    Ok(normalise(net))
}

/// Parses a list of CIDR blocks or bare addresses; the first bad entry fails the whole list.
pub fn parse_cidrs<S: AsRef<str>>(list: &[S]) -> Result<Vec<IpNet>, CredentialsError> {
    list.iter().map(|s| parse_cidr(s.as_ref())).collect()
}

/// Whether `ip` is inside one of `nets`. An empty list means "no restriction" and allows every address.
/// IPv4-mapped IPv6 addresses are matched as IPv4.
pub fn ip_allowed(nets: &[IpNet], ip: IpAddr) -> bool {
    if nets.is_empty() {
        return true;
    }
    let ip = normalise_ip(ip);
    nets.iter().any(|net| normalise(*net).contains(&ip))
}

fn normalise_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn normalise(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(n);
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_cidr("192.168.1.7").unwrap().to_string(),
            "192.168.1.7/32"
        );
        assert_eq!(
            parse_cidr("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert_eq!(
            parse_cidr(" 2001:db8::/32 ").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            parse_cidr("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_cidr("::ffff:10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "abc",
            "10.0.0.0/",
            "/8",
            "2001:db8::/129",
            "1.2.3.4/8/8",
        ] {
            let err = parse_cidr(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid CIDR"), "{bad}");
        }
        assert_eq!(parse_cidrs(&["10.0.0.0/8", "::1"]).unwrap().len(), 2);
        assert!(parse_cidrs(&["10.0.0.0/8", "nope"]).is_err());
        assert!(parse_cidrs::<String>(&[]).unwrap().is_empty());
    }

    #[test]
    fn matching() {
        let nets = parse_cidrs(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]).unwrap();
        assert!(ip_allowed(&nets, ip("10.1.2.3")));
        assert!(ip_allowed(&nets, ip("192.168.1.7")));
        assert!(!ip_allowed(&nets, ip("192.168.1.8")));
        assert!(ip_allowed(&nets, ip("2001:db8::42")));
        assert!(!ip_allowed(&nets, ip("2001:db9::42")));
        assert!(ip_allowed(&nets, ip("::ffff:10.9.9.9")));
        assert!(!ip_allowed(&nets, ip("::ffff:11.9.9.9")));
        assert!(!ip_allowed(&nets, ip("127.0.0.1")));
        assert!(ip_allowed(&[], ip("127.0.0.1")));
        // Nets built by hand as IPv4-mapped IPv6 still match IPv4 clients.
        let mapped: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(ip_allowed(&[mapped], ip("10.2.3.4")));
        // Host bits set in the block are fine.
        assert!(ip_allowed(
            &parse_cidrs(&["10.1.2.3/8"]).unwrap(),
            ip("10.200.0.1")
        ));
    }
}
