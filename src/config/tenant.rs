//! `[[accepted_domains]]` and `[[inbound_connectors]]`: the tenant, in the names and forms of
//! `Get-AcceptedDomain` and `New-InboundConnector`, refused where Exchange Online would refuse
//! it too.

use super::keyword;
use super::values::{domain_name, invalid, quoted};
use super::ConfigError;
use crate::policy::{
    is_subdomain_or_equal, normalise_address, AcceptedDomain, CertificateName, ConnectorType,
    DomainType, InboundConnector, SenderDomain,
};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::IpAddr;

/// Exchange Online's default for a new accepted domain.
pub const fn default_domain_type() -> DomainType {
    DomainType::Authoritative
}

/// `[[accepted_domains]]` as written (`Get-AcceptedDomain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedDomainConfig {
    /// `DomainName`. Required.
    pub domain: String,
    /// `DomainType`: `"Authoritative"` or `"InternalRelay"`. Default `"Authoritative"`.
    #[serde(with = "keyword", default = "default_domain_type")]
    pub domain_type: DomainType,
    /// `MatchSubDomains`: every subdomain is accepted too; only with InternalRelay. Default false.
    #[serde(default)]
    pub match_subdomains: bool,
    /// Known recipient addresses: enables 5.4.1 (Directory-Based Edge Blocking) for others.
    /// Default absent: every address is accepted.
    pub recipients: Option<Vec<String>>,
}

pub const fn default_enabled() -> bool {
    true
}

/// Exchange Online's default `SenderDomains`: any sender domain.
pub const fn default_sender_domains() -> [&'static str; 1] {
    ["*"]
}

fn default_sender_domain_list() -> Vec<String> {
    default_sender_domains().map(String::from).to_vec()
}

/// `[[inbound_connectors]]` as written (`New-InboundConnector`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConnectorConfig {
    /// `Name`, unique (case-insensitive). Required.
    pub name: String,
    /// `ConnectorType`: `"OnPremises"` (can authorise relay) or `"Partner"` (only restricts
    /// inbound mail). Required.
    #[serde(with = "keyword")]
    pub connector_type: ConnectorType,
    /// `Enabled`: a disabled connector matches nothing. Default true.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// `SenderIPAddresses`: IPv4 addresses or CIDR /24 to /32. Default `[]`.
    #[serde(default)]
    pub sender_ip_addresses: Vec<String>,
    /// `TlsSenderCertificateName`: a host name or `*.` followed by one. Default absent.
    pub tls_sender_certificate_name: Option<String>,
    /// `SenderDomains` (Partner only): `*`, `domain` or `*.domain`. Default `["*"]`.
    #[serde(default = "default_sender_domain_list")]
    pub sender_domains: Vec<String>,
    /// `RestrictDomainsToIPAddresses` (Partner only). Default false.
    #[serde(default)]
    pub restrict_domains_to_ip_addresses: bool,
    /// `RestrictDomainsToCertificate` (Partner only). Default false.
    #[serde(default)]
    pub restrict_domains_to_certificate: bool,
    /// `RequireTls`. Partner: mail whose P1 domain `sender_domains` covers must come under TLS
    /// (454 4.7.0 otherwise). OnPremises: informational, as in Exchange Online (the Hybrid
    /// Configuration Wizard sets it there). Default false.
    #[serde(default)]
    pub require_tls: bool,
}

impl AcceptedDomainConfig {
    pub(super) fn validate(&self, key: &str) -> Result<AcceptedDomain, ConfigError> {
        let domain = domain_name(&format!("{key}.domain"), &self.domain)?;
        if self.match_subdomains && self.domain_type != DomainType::InternalRelay {
            return Err(invalid(
                format!("{key}.match_subdomains"),
                true,
                "is only allowed with domain_type = \"InternalRelay\" (Exchange Online refuses it too)",
            ));
        }
        let recipients = match &self.recipients {
            None => None,
            Some(list) => {
                let mut set = HashSet::new();
                for (i, r) in list.iter().enumerate() {
                    let rkey = format!("{key}.recipients[{i}]");
                    let Some((local, dom)) = r.rsplit_once('@') else {
                        return Err(invalid(rkey, quoted(r), "is not an address (local@domain)"));
                    };
                    let dom = domain_name(&rkey, dom)?;
                    let belongs = dom == domain
                        || (self.match_subdomains && is_subdomain_or_equal(&dom, &domain));
                    if local.is_empty() || !belongs {
                        return Err(invalid(
                            rkey,
                            quoted(r),
                            format!("is not an address in {domain}"),
                        ));
                    }
                    set.insert(normalise_address(local, &dom));
                }
                Some(set)
            }
        };
        Ok(AcceptedDomain {
            domain,
            domain_type: self.domain_type,
            match_subdomains: self.match_subdomains,
            recipients,
        })
    }
}

/// `SenderIPAddresses` as Exchange Online accepts them: IPv4, single or CIDR /24 to /32.
pub(crate) fn sender_ip_address(key: &str, value: &str) -> Result<Ipv4Net, ConfigError> {
    let exo = "Exchange Online accepts only IPv4 addresses and CIDR ranges from /24 to /32, and would refuse it too";
    let v = value.trim();
    if v.contains('-') {
        return Err(invalid(
            key,
            quoted(value),
            format!("address ranges (a-b) are not supported; {exo}"),
        ));
    }
    let net: ipnet::IpNet = if v.contains('/') {
        v.parse().map_err(|_| {
            invalid(
                key,
                quoted(value),
                format!("is not an address or CIDR range; {exo}"),
            )
        })?
    } else {
        let ip: IpAddr = v
            .parse()
            .map_err(|_| invalid(key, quoted(value), format!("is not an IP address; {exo}")))?;
        ipnet::IpNet::from(ip)
    };
    match net {
        ipnet::IpNet::V6(_) => Err(invalid(key, quoted(value), format!("is IPv6; {exo}"))),
        ipnet::IpNet::V4(n) if n.prefix_len() < 24 => Err(invalid(
            key,
            quoted(value),
            format!("a /{} range is larger than /24; {exo}", n.prefix_len()),
        )),
        ipnet::IpNet::V4(n) => Ok(n.trunc()),
    }
}

/// `TlsSenderCertificateName`: `host.name` or `*.host.name`, nothing else.
pub(crate) fn certificate_name(key: &str, value: &str) -> Result<CertificateName, ConfigError> {
    let (wildcard, name) = match value.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if name.contains('*') {
        return Err(invalid(
            key,
            quoted(value),
            "only a leading \"*.\" is allowed (Exchange Online refuses other wildcards too)",
        ));
    }
    let domain = domain_name(key, name)?;
    Ok(if wildcard {
        CertificateName::Wildcard(domain)
    } else {
        CertificateName::Exact(domain)
    })
}

impl InboundConnectorConfig {
    pub(super) fn validate(&self, key: &str) -> Result<InboundConnector, ConfigError> {
        if self.name.trim().is_empty() {
            return Err(invalid(
                format!("{key}.name"),
                quoted(&self.name),
                "must not be empty",
            ));
        }
        let mut sender_ip_addresses = Vec::new();
        for (i, a) in self.sender_ip_addresses.iter().enumerate() {
            sender_ip_addresses.push(sender_ip_address(
                &format!("{key}.sender_ip_addresses[{i}]"),
                a,
            )?);
        }
        let tls_sender_certificate_name = match &self.tls_sender_certificate_name {
            None => None,
            Some(n) => Some(certificate_name(
                &format!("{key}.tls_sender_certificate_name"),
                n,
            )?),
        };
        if self.connector_type == ConnectorType::OnPremises
            && sender_ip_addresses.is_empty()
            && tls_sender_certificate_name.is_none()
        {
            return Err(invalid(
                key,
                quoted(&self.name),
                "an OnPremises connector needs sender_ip_addresses or tls_sender_certificate_name (Exchange Online requires one)",
            ));
        }
        let mut sender_domains = Vec::new();
        for (i, d) in self.sender_domains.iter().enumerate() {
            let dkey = format!("{key}.sender_domains[{i}]");
            sender_domains.push(if d == "*" {
                SenderDomain::Any
            } else if let Some(rest) = d.strip_prefix("*.") {
                SenderDomain::WithSubdomains(domain_name(&dkey, rest)?)
            } else {
                SenderDomain::Exact(domain_name(&dkey, d)?)
            });
        }
        if self.restrict_domains_to_certificate && tls_sender_certificate_name.is_none() {
            return Err(invalid(
                format!("{key}.restrict_domains_to_certificate"),
                true,
                "needs tls_sender_certificate_name on the same connector",
            ));
        }
        if self.restrict_domains_to_ip_addresses && sender_ip_addresses.is_empty() {
            return Err(invalid(
                format!("{key}.restrict_domains_to_ip_addresses"),
                true,
                "needs sender_ip_addresses on the same connector",
            ));
        }
        Ok(InboundConnector {
            name: self.name.clone(),
            connector_type: self.connector_type,
            enabled: self.enabled,
            sender_ip_addresses,
            tls_sender_certificate_name,
            sender_domains,
            restrict_domains_to_ip_addresses: self.restrict_domains_to_ip_addresses,
            restrict_domains_to_certificate: self.restrict_domains_to_certificate,
            require_tls: self.require_tls,
        })
    }
}
