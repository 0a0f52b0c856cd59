//! The tenant as Exchange Online sees it: accepted domains and inbound connectors.
//!
//! These are validated values (built by `config::Config::validate`), named after the Exchange
//! properties an admin sets with `Set-AcceptedDomain` and `New-InboundConnector`. Domain strings
//! here are already lower-case and without a trailing dot.

use ipnet::Ipv4Net;
use std::collections::HashSet;

/// `Get-AcceptedDomain`'s `DomainType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainType {
    Authoritative,
    InternalRelay,
}

/// One accepted domain of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedDomain {
    /// `DomainName`, lower-case, no trailing dot.
    pub domain: String,
    pub domain_type: DomainType,
    /// `MatchSubDomains`: every subdomain is accepted too (InternalRelay only).
    pub match_subdomains: bool,
    /// Known recipient addresses, lower-cased. `None`: no list, every address is accepted.
    /// `Some`: Directory-Based Edge Blocking answers 5.4.1 for any other address
    /// (Authoritative domains only).
    pub recipients: Option<HashSet<String>>,
}

/// `ConnectorType` of an inbound connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorType {
    /// From the organisation's own mail servers: can authorise relay.
    OnPremises,
    /// From a partner organisation: never authorises relay, only restricts inbound mail.
    Partner,
}

impl ConnectorType {
    /// Exchange's own spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorType::OnPremises => "OnPremises",
            ConnectorType::Partner => "Partner",
        }
    }
}

/// `TlsSenderCertificateName`, in one of the two forms Exchange Online accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateName {
    /// `mail.contoso.com`: a certificate name must equal it.
    Exact(String),
    /// `*.contoso.com` (stored as `contoso.com`): a certificate name equal to it or ending in
    /// `.contoso.com`, at any depth, matches; so does a certificate name literally `*.contoso.com`.
    Wildcard(String),
}

/// One entry of a Partner connector's `SenderDomains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderDomain {
    /// `*`: every P1 domain.
    Any,
    /// `contoso.com`
    Exact(String),
    /// `*.contoso.com` (stored as `contoso.com`): the domain and its subdomains.
    WithSubdomains(String),
}

/// One inbound connector (`New-InboundConnector`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundConnector {
    pub name: String,
    pub connector_type: ConnectorType,
    pub enabled: bool,
    /// `SenderIPAddresses`: IPv4 only, /24 to /32 (validated).
    pub sender_ip_addresses: Vec<Ipv4Net>,
    pub tls_sender_certificate_name: Option<CertificateName>,
    /// Partner only.
    pub sender_domains: Vec<SenderDomain>,
    /// Partner only.
    pub restrict_domains_to_ip_addresses: bool,
    /// Partner only.
    pub restrict_domains_to_certificate: bool,
    /// `RequireTls`. On a Partner connector: mail whose P1 domain its `SenderDomains` cover must
    /// arrive under TLS (454 4.7.0 otherwise). On an OnPremises connector it is informational:
    /// Exchange Online does not enforce it there (the Hybrid Configuration Wizard sets it).
    pub require_tls: bool,
}

/// Everything the policy needs to know about the tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenant {
    /// `[[tenants]] name`; empty for the one implicit tenant of a file without `[[tenants]]`
    /// (the log, the metrics and `check` then name no tenant, as before tenants existed).
    pub name: String,
    pub accepted_domains: Vec<AcceptedDomain>,
    pub inbound_connectors: Vec<InboundConnector>,
    /// Recipient domains hosted by other Microsoft 365 tenants (lower-case): mail to them is
    /// inbound to that tenant, not relay. Exchange Online knows this from its directory.
    pub other_tenant_domains: Vec<String>,
    /// `RejectDirectSend` of the organisation config (5.7.68).
    pub reject_direct_send: bool,
}

impl AsRef<Tenant> for Tenant {
    fn as_ref(&self) -> &Tenant {
        self
    }
}
