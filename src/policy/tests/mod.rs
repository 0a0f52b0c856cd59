//! The engine's tests, against the contract in `docs/exo-relay-rules.md`.
//!
//! - `examples.rs`: the document's worked examples, one line each, under both profiles;
//! - `document.rs`: the document's tables and the tests' tables say the same thing;
//! - `rules.rs`: rules below the level of a whole transaction (matching, which branch and which
//!   connector decided, the legacy profile's wait for the header, the reply texts);
//! - `fixes.rs`: one flow under both profiles side by side, and the fix suggested for a refusal.
//!
//! They reach the engine through the helpers below, so that a change to its API (the shape of
//! `Rejection::reply()`, say) is fixed here once rather than in every test.

use super::*;
use std::collections::HashSet;

mod document;
mod examples;
mod fixes;
mod rules;
mod submission;
mod tenants;

/// The external recipient of most examples.
const EXT: &str = "bob@example.org";
/// A recipient in the accepted domain `contoso.com`.
const ALICE: &str = "alice@contoso.com";
/// The certificate column of a session that never did STARTTLS.
const NO_TLS: &str = "no TLS";

fn accepted(domain: &str, domain_type: DomainType, match_subdomains: bool) -> AcceptedDomain {
    AcceptedDomain {
        domain: domain.into(),
        domain_type,
        match_subdomains,
        recipients: None,
    }
}

fn on_premises(name: &str, ips: &[&str], cert: Option<CertificateName>) -> InboundConnector {
    InboundConnector {
        name: name.into(),
        connector_type: ConnectorType::OnPremises,
        enabled: true,
        sender_ip_addresses: ips.iter().map(|i| i.parse().expect("a CIDR")).collect(),
        tls_sender_certificate_name: cert,
        sender_domains: vec![SenderDomain::Any],
        restrict_domains_to_ip_addresses: false,
        restrict_domains_to_certificate: false,
        require_tls: false,
    }
}

/// The Partner connector `P-RESTRICT` of the document's `partner-*` variants.
fn partner(
    restrict_ip: bool,
    restrict_cert: bool,
    sender_domains: Vec<SenderDomain>,
) -> InboundConnector {
    InboundConnector {
        name: "P-RESTRICT".into(),
        connector_type: ConnectorType::Partner,
        enabled: true,
        sender_ip_addresses: vec!["192.0.2.0/24".parse().expect("a CIDR")],
        tls_sender_certificate_name: Some(CertificateName::Exact("mx.partner.example".into())),
        sender_domains,
        restrict_domains_to_ip_addresses: restrict_ip,
        restrict_domains_to_certificate: restrict_cert,
        require_tls: false,
    }
}

/// The document's tenant `base`.
fn baseline() -> Tenant {
    Tenant {
        name: String::new(),
        accepted_domains: vec![
            accepted("contoso.com", DomainType::Authoritative, false),
            accepted("fabrikam.com", DomainType::InternalRelay, true),
        ],
        inbound_connectors: vec![
            on_premises("C-IP", &["203.0.113.0/24"], None),
            on_premises(
                "C-CERT",
                &[],
                Some(CertificateName::Wildcard("contoso.com".into())),
            ),
        ],
        other_tenant_domains: vec![],
        reject_direct_send: false,
    }
}

/// The tenant variants of the document's "The tenant" table, by name.
const VARIANTS: &[&str] = &[
    "base",
    "disabled",
    "partner-only",
    "exact-cert",
    "exact-cert-accepted",
    "partner-ip",
    "partner-cert",
    "partner-cert-sub",
    "partner-tls",
    "onprem-tls",
    "reject-direct-send",
    "recipient-list",
    "internal-relay-list",
    "other-tenant",
    "two-tenants",
];

/// The tenants a variant names: one for a single-tenant variant, several for a tenant set
/// (`None` for a name the tests do not know).
fn tenant_set(variant: &str) -> Option<Vec<Tenant>> {
    match variant {
        "two-tenants" => Some(two_tenants()),
        _ => tenant(variant).map(|t| vec![t]),
    }
}

/// The document's tenant set `two-tenants`: `contoso` (the `base` tenant) and `tailspin`,
/// behind one on-premises Exchange whose address both tenants' IP connectors list.
fn two_tenants() -> Vec<Tenant> {
    let contoso = Tenant {
        name: "contoso".into(),
        ..baseline()
    };
    let tailspin = Tenant {
        name: "tailspin".into(),
        accepted_domains: vec![accepted(
            "tailspin.example",
            DomainType::Authoritative,
            false,
        )],
        inbound_connectors: vec![
            on_premises("T-IP", &["203.0.113.0/24"], None),
            on_premises(
                "T-CERT",
                &[],
                Some(CertificateName::Wildcard("tailspin.example".into())),
            ),
        ],
        other_tenant_domains: vec![],
        reject_direct_send: false,
    };
    vec![contoso, tailspin]
}

/// The tenant a single-tenant variant names (`None` for a name the tests do not know).
fn tenant(variant: &str) -> Option<Tenant> {
    let mut t = baseline();
    let exact_cert = |t: &mut Tenant| {
        t.inbound_connectors[1].tls_sender_certificate_name =
            Some(CertificateName::Exact("mail.contoso.com".into()));
    };
    match variant {
        "base" => {}
        "disabled" => t
            .inbound_connectors
            .iter_mut()
            .for_each(|c| c.enabled = false),
        "partner-only" => t
            .inbound_connectors
            .iter_mut()
            .for_each(|c| c.connector_type = ConnectorType::Partner),
        "exact-cert" => exact_cert(&mut t),
        "exact-cert-accepted" => {
            exact_cert(&mut t);
            t.accepted_domains.push(accepted(
                "mail.contoso.com",
                DomainType::Authoritative,
                false,
            ));
        }
        "partner-ip" => t.inbound_connectors.push(partner(
            true,
            false,
            vec![SenderDomain::Exact("partner.example".into())],
        )),
        "partner-cert" => t
            .inbound_connectors
            .push(partner(false, true, vec![SenderDomain::Any])),
        "partner-cert-sub" => t.inbound_connectors.push(partner(
            false,
            true,
            vec![SenderDomain::WithSubdomains("partner.example".into())],
        )),
        "partner-tls" => {
            let mut p = partner(
                true,
                false,
                vec![SenderDomain::Exact("partner.example".into())],
            );
            p.require_tls = true;
            t.inbound_connectors.push(p);
        }
        "onprem-tls" => t
            .inbound_connectors
            .iter_mut()
            .for_each(|c| c.require_tls = true),
        "reject-direct-send" => t.reject_direct_send = true,
        "recipient-list" => {
            t.accepted_domains[0].recipients = Some(HashSet::from([ALICE.to_string()]));
        }
        "internal-relay-list" => {
            t.accepted_domains[1].recipients = Some(HashSet::from(["a@fabrikam.com".to_string()]));
        }
        "other-tenant" => t.other_tenant_domains = vec!["northwind.example".into()],
        _ => return None,
    }
    Some(t)
}

/// Who is speaking: the peer address, whether under TLS, and the names of a trusted certificate.
struct Client {
    peer_ip: std::net::IpAddr,
    tls: bool,
    names: Vec<String>,
}

impl Client {
    /// `certificate` as the document writes it: `no TLS` (no STARTTLS, so no certificate
    /// either); under TLS, `none`, `untrusted <name>` (no identity), or the comma-separated
    /// names of a trusted certificate.
    fn new(peer: &str, certificate: &str) -> Client {
        let tls = certificate != NO_TLS;
        let names = if !tls || certificate == "none" || certificate.starts_with("untrusted ") {
            Vec::new()
        } else {
            certificate
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .collect()
        };
        Client {
            peer_ip: peer
                .parse()
                .unwrap_or_else(|_| panic!("{peer}: not an IP address")),
            tls,
            names,
        }
    }

    fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            peer_ip: self.peer_ip,
            certificate_names: &self.names,
            tls: self.tls,
            submitter: None,
        }
    }
}

/// `MAIL FROM` as the document writes it: `<>` for the null sender.
fn p1(address: &str) -> ReversePath<'_> {
    if address == "<>" {
        ReversePath::Null
    } else {
        ReversePath::of_address(address)
    }
}

/// The `From:` address as the document writes it: `none` (no usable address), `unread` (the
/// header block never came).
fn p2(address: &str) -> HeaderSender<'_> {
    match address {
        "none" => HeaderSender::Absent,
        "unread" => HeaderSender::NotYetKnown,
        a => HeaderSender::of_address(Some(a)),
    }
}

/// One transaction, judged as the session and `relaygate check` judge it.
fn judge(
    tenant: &Tenant,
    profile: Profile,
    client: &Client,
    mail_from: &str,
    from: &str,
    recipients: &[&str],
) -> Evaluation {
    evaluate(
        tenant,
        profile,
        &client.facts(),
        p1(mail_from),
        p2(from),
        recipients,
    )
}

/// The same among several tenants: attributed first, as the session does.
fn judge_among(
    tenants: &[Tenant],
    profile: Profile,
    client: &Client,
    mail_from: &str,
    from: &str,
    recipients: &[&str],
) -> Evaluation {
    evaluate_among(
        tenants,
        None,
        profile,
        &client.facts(),
        p1(mail_from),
        p2(from),
        recipients,
    )
}

/// The refusal as Exchange Online writes it, without the suffix: `550 5.7.64 TenantAttribution; ...`.
/// The only place that knows the shape of `Rejection::reply()`.
fn reply_line(rejection: &Rejection) -> String {
    rejection.reply().to_line()
}

/// The enhanced status code of a refusal (`5.7.64`).
fn enhanced_code(rejection: &Rejection) -> String {
    rejection.reply().enhanced.to_string()
}
