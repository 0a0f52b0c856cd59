//! What the gate accepts: src/config.rs's own checks, so that what is imported is what loads,
//! with the reasons worded for an import (what Exchange printed, and what becomes of it).

/// A DNS domain name as `[[accepted_domains]] domain` takes it, normalised.
pub(super) fn domain_name(value: &str) -> Option<String> {
    crate::config::domain_name("", value).ok()
}

/// `TlsSenderCertificateName` in the host-name form: `host.name` or `*.host.name`.
fn certificate_host(value: &str) -> Option<String> {
    crate::config::certificate_name("", value.trim())
        .ok()
        .map(|name| name.to_string())
}

const IPV4_ONLY: &str = "relaygate, like Exchange Online, takes only IPv4 addresses and CIDR \
                         ranges from /24 to /32; the entry is left out";

/// One `SenderIPAddresses` entry: `Ok(as written)` or `Err(reason)`.
pub(super) fn sender_ip(text: &str) -> Result<String, String> {
    let v = text.trim();
    if v.contains('-') {
        return Err(format!("an address range (a-b): {IPV4_ONLY}"));
    }
    if v.contains('(') {
        return Err(format!("an address with a netmask, a(mask): {IPV4_ONLY}"));
    }
    let net = if v.contains('/') {
        v.parse::<ipnet::IpNet>().ok()
    } else {
        v.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from)
    };
    match net {
        None => Err(format!("not an IP address or CIDR range: {IPV4_ONLY}")),
        Some(ipnet::IpNet::V6(_)) => Err(format!("IPv6: {IPV4_ONLY}")),
        Some(ipnet::IpNet::V4(n)) if n.prefix_len() < 24 => Err(format!(
            "a /{} range is larger than /24: {IPV4_ONLY}",
            n.prefix_len()
        )),
        // The gate's own check decides; the cases above only word the reason for an import.
        Some(ipnet::IpNet::V4(_)) => crate::config::sender_ip_address("", v)
            .map(|_| v.to_string())
            .map_err(|e| e.to_string()),
    }
}

/// One `SenderDomains` entry. Exchange prints these as address spaces, `smtp:*;1`
/// (`type:domain;cost`): the type must be SMTP, the cost means nothing to the gate.
pub(super) fn sender_domain(text: &str) -> Result<String, String> {
    let mut v = text.trim();
    if let Some((kind, rest)) = v.split_once(':') {
        if !kind.trim().eq_ignore_ascii_case("smtp") {
            return Err(format!(
                "a {} address space, not SMTP: relaygate matches SMTP domains only; the entry is \
                 left out",
                kind.trim()
            ));
        }
        v = rest;
    }
    if let Some((domain, cost)) = v.rsplit_once(';') {
        if cost.trim().is_empty() || cost.trim().parse::<u32>().is_ok() {
            v = domain;
        }
    }
    let v = v.trim();
    let parsed = if v == "*" {
        Some("*".to_string())
    } else {
        certificate_host(v)
    };
    parsed.ok_or_else(|| {
        "not \"*\", a domain or \"*.\" and a domain (letters, digits and hyphens; IDNs in \
         punycode): relaygate cannot match it; the entry is left out"
            .to_string()
    })
}

/// What became of `TlsSenderCertificateName`.
pub(super) enum Certificate {
    /// The host-name form, as the gate takes it.
    Host(String),
    /// The X.509 form `<I>issuer<S>subject`: the subject's CN, which the gate takes.
    SubjectCommonName(String),
    /// Nothing the gate can take; the reason.
    Unusable(&'static str),
}

/// Exchange's `TlsCertificate` is a host name (`SmtpDomainWithSubdomains`) or an X.509
/// identifier `<I>issuer<S>subject` (`SmtpX509Identifier`, whose subject CN is
/// `CN=(.*?)($|,)`, the first `CN=` up to a comma). The gate matches certificate names only, so
/// the X.509 form becomes its CN.
pub(super) fn certificate(text: &str) -> Certificate {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    if upper.starts_with("<I>") || upper.starts_with("<S>") {
        let Some(s) = upper.find("<S>") else {
            return Certificate::Unusable("an X.509 identifier without a subject (<S>)");
        };
        let subject = &t[s + 3..];
        let Some(cn) = subject.to_ascii_uppercase().find("CN=") else {
            return Certificate::Unusable("an X.509 identifier whose subject has no CN");
        };
        let cn = subject[cn + 3..].split(',').next().unwrap_or("");
        return match certificate_host(cn.trim().trim_matches('"')) {
            Some(host) => Certificate::SubjectCommonName(host),
            None => Certificate::Unusable(
                "an X.509 identifier whose subject CN is not a host name or \"*.\" and one",
            ),
        };
    }
    match certificate_host(t) {
        Some(host) => Certificate::Host(host),
        None => Certificate::Unusable(
            "not a host name, \"*.\" and one, or an X.509 identifier <I>issuer<S>subject",
        ),
    }
}
