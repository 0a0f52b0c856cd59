//! The decision itself: is relay authorised (conditions 1 and 2), and what does each recipient get.

use super::canonical::{ipv4_of, is_subdomain_or_equal, normalise, normalise_address};
use super::{
    AcceptedDomain, CertificateName, ConnectorType, DomainType, InboundConnector, Profile,
    ReversePath, SenderDomain, SessionFacts, Tenant,
};
use crate::wire::reply::Reply;
use std::net::IpAddr;

/// The P2 sender (the address of the first `From:` header) as far as the session knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSender<'a> {
    /// The header block has not been read yet (RCPT time).
    NotYetKnown,
    /// The header block was read and had no usable `From:` address.
    Absent,
    /// The domain of the first `From:` address.
    Domain(&'a str),
}

/// Which branch of condition 1 held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition1 {
    /// 1a: a certificate connector matched and its `TlsSenderCertificateName` (without `*.`)
    /// is an accepted domain.
    CertificateDomain {
        connector: String,
        accepted_domain: String,
    },
    /// 1b: the P1 domain is an accepted domain.
    EnvelopeSender { domain: String },
    /// 1c (`exo-legacy` only): the P2 domain is an accepted domain.
    HeaderSender { domain: String },
}

/// How condition 2 held: which enabled OnPremises connector matched, and by what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition2 {
    SenderIpAddress { connector: String },
    TlsSenderCertificate { connector: String },
}

/// Why relay is not authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayDenial {
    /// Condition 2 failed: neither the peer address nor a trusted certificate matched an enabled
    /// OnPremises connector.
    NoOnPremisesConnector,
    /// Condition 2 held, condition 1 did not (no branch of it, under the profile in force).
    SenderNotAttributed { condition2: Condition2 },
    /// Several tenants, and none of them is this transaction's: neither the certificate, the
    /// P1 domain nor a recipient domain is one of their accepted domains (MC1226222).
    NoTenant,
    /// An authenticated user whose `allowed_senders` do not cover the P1: Exchange Online's
    /// SendAs refusal, `550 5.7.60`, answered at MAIL.
    SendAsDenied { user: String },
}

/// The answer to "may this transaction relay?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayDecision {
    Authorized {
        condition1: Condition1,
        condition2: Condition2,
    },
    /// `exo-legacy` before the header block: condition 2 holds, 1a and 1b do not, 1c may.
    AwaitingHeaderSender {
        condition2: Condition2,
    },
    Denied(RelayDenial),
    /// An authenticated user allowed to send as the P1: Exchange Online authorises an
    /// authenticated mailbox for every recipient, whatever the connectors say.
    Authenticated {
        user: String,
    },
}

/// Exchange Online's SendAs refusal on client submission, without the suffix.
pub fn send_as_refusal() -> Reply {
    Reply::new(
        550,
        "5.7.60",
        "SMTP; Client does not have permissions to send as this sender",
    )
}

/// Why a recipient is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptReason {
    /// Relay is authorised: the message is "Originating", every recipient is accepted.
    Originating,
    /// Inbound mail to an accepted domain of this tenant.
    Inbound { accepted_domain: String },
    /// Inbound mail to a domain hosted by another Microsoft 365 tenant.
    OtherTenant { domain: String },
}

/// A refusal, each mirroring one Exchange Online reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 4.7.0, temporary: a Partner connector covering the P1 domain has `RequireTls`, and the
    /// session is not under TLS. Temporary so that the sender keeps the message and can try
    /// again with STARTTLS.
    RequireTls { connector: String },
    /// 5.7.51: a Partner connector covering the P1 domain restricts it to its IPs or certificate.
    PartnerConnectorRestriction { connector: String },
    /// 5.7.68: RejectDirectSend is on and the P1 domain is ours, from an unattributed source.
    DirectSendNotAllowed,
    /// 5.4.1: Directory-Based Edge Blocking, the address is not a known recipient.
    RecipientNotFound,
    /// 5.7.64: relay to a domain that is not ours, not authorised.
    RelayAccessDenied(RelayDenial),
    /// 452 4.5.3, temporary: the recipient belongs to another tenant of this gate than the one
    /// the transaction is attributed to. Exchange Online answers so (MC1226222), and the
    /// sender retries it in a transaction of its own, which that tenant's rules then judge.
    OtherTenantRecipient { tenant: String },
}

/// The verdict for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientVerdict {
    Accept(AcceptReason),
    Reject(Rejection),
    /// `exo-legacy` only: a relay recipient whose fate depends on the P2 sender.
    AwaitingHeaderSender,
}

impl Tenant {
    /// The accepted domain that covers `domain`, if any: the domain itself, or a parent that is
    /// InternalRelay with MatchSubDomains. A subdomain is not accepted just because its parent is.
    pub fn accepted_domain(&self, domain: &str) -> Option<&AcceptedDomain> {
        let d = normalise(domain);
        if d.is_empty() {
            return None;
        }
        self.accepted_domains.iter().find(|a| {
            a.domain == d
                || (a.match_subdomains
                    && a.domain_type == DomainType::InternalRelay
                    && is_subdomain_or_equal(&d, &a.domain))
        })
    }

    fn is_other_tenant_domain(&self, domain: &str) -> bool {
        let d = normalise(domain);
        self.other_tenant_domains.contains(&d)
    }
}

impl CertificateName {
    /// Whether a (trusted, lower-cased) certificate name matches this `TlsSenderCertificateName`.
    pub fn matches(&self, certificate_name: &str) -> bool {
        let n = normalise(certificate_name);
        match self {
            // A wildcard certificate matches only a connector that is literally the same wildcard.
            CertificateName::Exact(e) => n == *e,
            CertificateName::Wildcard(base) => n
                .strip_prefix("*.")
                .map_or_else(|| is_subdomain_or_equal(&n, base), |rest| rest == base),
        }
    }

    /// The domain condition 1a needs accepted: the name with a leading `*.` removed.
    pub fn domain(&self) -> &str {
        match self {
            CertificateName::Exact(d) | CertificateName::Wildcard(d) => d,
        }
    }
}

impl InboundConnector {
    /// The peer address is in `SenderIPAddresses` (IPv4 only, as Exchange Online; an IPv4-mapped
    /// IPv6 address counts as its IPv4 address).
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        let Some(v4) = ipv4_of(ip) else {
            return false;
        };
        self.enabled && self.sender_ip_addresses.iter().any(|n| n.contains(&v4))
    }

    /// Some trusted certificate name matches `TlsSenderCertificateName`.
    pub fn matches_certificate(&self, certificate_names: &[String]) -> bool {
        self.enabled
            && self
                .tls_sender_certificate_name
                .as_ref()
                .is_some_and(|c| certificate_names.iter().any(|n| c.matches(n)))
    }

    /// `SenderDomains` covers this P1 (Partner connectors). `*` covers every P1, the null
    /// sender included; a named domain never covers the null sender.
    pub fn covers_sender(&self, reverse_path: ReversePath<'_>) -> bool {
        self.sender_domains.iter().any(|s| match (s, reverse_path) {
            (SenderDomain::Any, _) => true,
            (_, ReversePath::Null) => false,
            (SenderDomain::Exact(d), ReversePath::Domain(p1)) => normalise(p1) == *d,
            (SenderDomain::WithSubdomains(d), ReversePath::Domain(p1)) => {
                is_subdomain_or_equal(&normalise(p1), d)
            }
        })
    }
}

impl RelayDecision {
    /// How condition 2 held, whatever became of condition 1; `None` when it failed.
    pub fn condition2(&self) -> Option<&Condition2> {
        match self {
            RelayDecision::Authorized { condition2, .. }
            | RelayDecision::AwaitingHeaderSender { condition2 }
            | RelayDecision::Denied(RelayDenial::SenderNotAttributed { condition2 }) => {
                Some(condition2)
            }
            RelayDecision::Denied(
                RelayDenial::NoOnPremisesConnector
                | RelayDenial::NoTenant
                | RelayDenial::SendAsDenied { .. },
            )
            | RelayDecision::Authenticated { .. } => None,
        }
    }
}

impl std::fmt::Display for CertificateName {
    /// As an admin writes it: `mail.contoso.com` or `*.contoso.com`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateName::Exact(d) => f.write_str(d),
            CertificateName::Wildcard(d) => write!(f, "*.{d}"),
        }
    }
}

impl Condition2 {
    /// The connector that matched.
    pub fn connector(&self) -> &str {
        match self {
            Condition2::SenderIpAddress { connector }
            | Condition2::TlsSenderCertificate { connector } => connector,
        }
    }
}

/// Condition 1 on its own, for the profile in force: which branch holds, if any. 1a is
/// preferred (it names the connector), then 1b, then 1c (`exo-legacy` only).
pub fn condition1(
    tenant: &Tenant,
    profile: Profile,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    header_sender: HeaderSender<'_>,
) -> Option<Condition1> {
    // 1a: a certificate connector matched and its name (without "*.") is accepted.
    let by_certificate = tenant.inbound_connectors.iter().find_map(|c| {
        if c.connector_type != ConnectorType::OnPremises
            || !c.matches_certificate(session.certificate_names)
        {
            return None;
        }
        let name = c.tls_sender_certificate_name.as_ref()?;
        let accepted = tenant.accepted_domain(name.domain())?;
        Some(Condition1::CertificateDomain {
            connector: c.name.clone(),
            accepted_domain: accepted.domain.clone(),
        })
    });
    let envelope = || match reverse_path {
        ReversePath::Domain(p1) => tenant
            .accepted_domain(p1)
            .map(|_| Condition1::EnvelopeSender {
                domain: normalise(p1),
            }),
        ReversePath::Null => None,
    };
    let header = || match (profile, header_sender) {
        (Profile::ExoLegacy, HeaderSender::Domain(p2)) => {
            tenant
                .accepted_domain(p2)
                .map(|_| Condition1::HeaderSender {
                    domain: normalise(p2),
                })
        }
        _ => None,
    };
    by_certificate.or_else(envelope).or_else(header)
}

/// Conditions 1 and 2 of the relay rule, for the profile in force.
///
/// When several connectors match, the first in configuration order is reported; for condition 2
/// a certificate match is preferred when the same connector also gave condition 1a, so the log
/// names the one path that authorised the message.
pub fn authorize_relay(
    tenant: &Tenant,
    profile: Profile,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    header_sender: HeaderSender<'_>,
) -> RelayDecision {
    // The second door: the authenticated user is the identity, the connectors do not matter.
    if let Some(submitter) = session.submitter {
        let user = submitter.user.to_string();
        return match submitter.may_send_as {
            true => RelayDecision::Authenticated { user },
            false => RelayDecision::Denied(RelayDenial::SendAsDenied { user }),
        };
    }
    let condition1 = condition1(tenant, profile, session, reverse_path, header_sender);
    // 2: the peer IP or the certificate matched an enabled OnPremises connector.
    let condition2 = match &condition1 {
        Some(Condition1::CertificateDomain { connector, .. }) => {
            Some(Condition2::TlsSenderCertificate {
                connector: connector.clone(),
            })
        }
        _ => tenant
            .inbound_connectors
            .iter()
            .filter(|c| c.enabled && c.connector_type == ConnectorType::OnPremises)
            .find_map(|c| {
                if c.matches_ip(session.peer_ip) {
                    Some(Condition2::SenderIpAddress {
                        connector: c.name.clone(),
                    })
                } else if c.matches_certificate(session.certificate_names) {
                    Some(Condition2::TlsSenderCertificate {
                        connector: c.name.clone(),
                    })
                } else {
                    None
                }
            }),
    };

    match (condition1, condition2) {
        (_, None) => RelayDecision::Denied(RelayDenial::NoOnPremisesConnector),
        (Some(condition1), Some(condition2)) => RelayDecision::Authorized {
            condition1,
            condition2,
        },
        (None, Some(condition2)) => {
            if profile == Profile::ExoLegacy && header_sender == HeaderSender::NotYetKnown {
                RelayDecision::AwaitingHeaderSender { condition2 }
            } else {
                RelayDecision::Denied(RelayDenial::SenderNotAttributed { condition2 })
            }
        }
    }
}

/// The verdict for one recipient (`local@domain`, as given in `RCPT TO`), given the relay
/// decision for the transaction.
pub fn judge_recipient(
    tenant: &Tenant,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    relay: &RelayDecision,
    recipient: &str,
) -> RecipientVerdict {
    if matches!(
        relay,
        RelayDecision::Authorized { .. } | RelayDecision::Authenticated { .. }
    ) {
        return RecipientVerdict::Accept(AcceptReason::Originating);
    }
    let domain = recipient.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if let Some(accepted) = tenant.accepted_domain(domain) {
        // Inbound mail to this tenant: the Partner connectors that cover the P1 domain apply,
        // RequireTls first (Exchange Online asks for TLS before it looks at who is sending).
        let mut partners = tenant.inbound_connectors.iter().filter(|c| {
            c.enabled && c.connector_type == ConnectorType::Partner && c.covers_sender(reverse_path)
        });
        if !session.tls {
            if let Some(c) = partners.clone().find(|c| c.require_tls) {
                return RecipientVerdict::Reject(Rejection::RequireTls {
                    connector: c.name.clone(),
                });
            }
        }
        let restricted = partners.find(|c| {
            (c.restrict_domains_to_ip_addresses && !c.matches_ip(session.peer_ip))
                || (c.restrict_domains_to_certificate
                    && !c.matches_certificate(session.certificate_names))
        });
        if let Some(c) = restricted {
            return RecipientVerdict::Reject(Rejection::PartnerConnectorRestriction {
                connector: c.name.clone(),
            });
        }
        if tenant.reject_direct_send {
            if let ReversePath::Domain(p1) = reverse_path {
                if tenant.accepted_domain(p1).is_some() {
                    return RecipientVerdict::Reject(Rejection::DirectSendNotAllowed);
                }
            }
        }
        if accepted.domain_type == DomainType::Authoritative {
            if let Some(known) = &accepted.recipients {
                let (local, _) = recipient.rsplit_once('@').unwrap_or((recipient, ""));
                if !known.contains(&normalise_address(local, domain)) {
                    return RecipientVerdict::Reject(Rejection::RecipientNotFound);
                }
            }
        }
        return RecipientVerdict::Accept(AcceptReason::Inbound {
            accepted_domain: accepted.domain.clone(),
        });
    }
    if !domain.is_empty() && tenant.is_other_tenant_domain(domain) {
        return RecipientVerdict::Accept(AcceptReason::OtherTenant {
            domain: normalise(domain),
        });
    }
    match relay {
        RelayDecision::AwaitingHeaderSender { .. } => RecipientVerdict::AwaitingHeaderSender,
        RelayDecision::Denied(d) => {
            RecipientVerdict::Reject(Rejection::RelayAccessDenied(d.clone()))
        }
        RelayDecision::Authorized { .. } | RelayDecision::Authenticated { .. } => {
            RecipientVerdict::Accept(AcceptReason::Originating)
        }
    }
}

impl Rejection {
    /// The reply Exchange Online answers, without the `[host time id]` suffix (the session
    /// adds it).
    pub fn reply(&self) -> Reply {
        let (code, enhanced, text) = match self {
            Rejection::RequireTls { .. } => (
                454,
                "4.7.0",
                "Failed to establish appropriate TLS channel: Access Denied",
            ),
            Rejection::PartnerConnectorRestriction { .. } => (
                550,
                "5.7.51",
                "TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set",
            ),
            Rejection::DirectSendNotAllowed => (
                550,
                "5.7.68",
                "TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources",
            ),
            Rejection::RecipientNotFound => (550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281)"),
            Rejection::RelayAccessDenied(_) => (550, "5.7.64", "TenantAttribution; Relay Access Denied"),
            Rejection::OtherTenantRecipient { .. } => (452, "4.5.3", "Too many recipients"),
        };
        Reply::new(code, enhanced, text)
    }
}
