//! How Exchange compares domains, addresses and peer IPs: one implementation of each.
//!
//! A domain that is "the same" in the configuration, the certificate check, the engine and the
//! PROXY trust list must be the same by one rule, or a name accepted in one place is refused in
//! another. Every module that compares names or addresses calls these.

use std::net::{IpAddr, Ipv4Addr};

/// Lower-case, without surrounding space or a trailing dot: how Exchange compares domains.
pub fn normalise(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A recipient address as Exchange's directory compares it: the local part lower-cased (any
/// script), the domain [normalised](normalise).
pub fn normalise_address(local: &str, domain: &str) -> String {
    format!("{}@{}", local.to_lowercase(), normalise(domain))
}

/// `name` is `base` or a subdomain of it, at any depth (both normalised). `evilcontoso.com` is
/// not a subdomain of `contoso.com`: the match is on a whole label.
pub fn is_subdomain_or_equal(name: &str, base: &str) -> bool {
    name == base
        || (name.len() > base.len()
            && name.ends_with(base)
            && name.as_bytes()[name.len() - base.len() - 1] == b'.')
}

/// The address a peer really has: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a
/// dual-stack socket reports for an IPv4 client) is its IPv4 address.
pub fn unmap_ipv4(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 address of a peer, mapped or not; `None` for a real IPv6 address (Exchange Online
/// connectors take IPv4 only).
pub fn ipv4_of(ip: IpAddr) -> Option<Ipv4Addr> {
    match unmap_ipv4(ip) {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_compare_without_case_space_or_trailing_dot() {
        assert_eq!(normalise(" Contoso.COM. "), "contoso.com");
        assert_eq!(normalise_address("Bob", "Contoso.com."), "bob@contoso.com");
    }

    #[test]
    fn subdomains_match_on_whole_labels_only() {
        assert!(is_subdomain_or_equal("contoso.com", "contoso.com"));
        assert!(is_subdomain_or_equal("a.b.contoso.com", "contoso.com"));
        assert!(!is_subdomain_or_equal("evilcontoso.com", "contoso.com"));
        assert!(!is_subdomain_or_equal("com", "contoso.com"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(unmap_ipv4(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(ipv4_of(mapped), Some(Ipv4Addr::new(192, 0, 2, 1)));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(unmap_ipv4(v6), v6);
        assert_eq!(ipv4_of(v6), None);
    }
}
