//! The rules document (`shared/exo-relay-rules.md`) as tests: first its worked examples, row by
//! row, under both profiles; then each rule on its own.

use super::*;
use crate::wire::reply::Reply;
use std::collections::HashSet;

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
        sender_ip_addresses: ips.iter().map(|i| i.parse().unwrap()).collect(),
        tls_sender_certificate_name: cert,
        sender_domains: vec![SenderDomain::Any],
        restrict_domains_to_ip_addresses: false,
        restrict_domains_to_certificate: false,
    }
}

/// The baseline of the worked examples.
fn baseline() -> Tenant {
    Tenant {
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

fn p1(s: &str) -> ReversePath<'_> {
    if s.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Domain(s.rsplit_once('@').unwrap().1)
    }
}

/// The final verdict for one recipient once the header is known, as the session computes it.
fn verdict(
    tenant: &Tenant,
    profile: Profile,
    peer: &str,
    certs: &[&str],
    mail_from: &str,
    from: &str,
    rcpt: &str,
) -> (RelayDecision, RecipientVerdict) {
    let names: Vec<String> = certs.iter().map(|s| s.to_string()).collect();
    let facts = SessionFacts {
        peer_ip: peer.parse().unwrap(),
        certificate_names: &names,
    };
    let header = if from.is_empty() {
        HeaderSender::Absent
    } else {
        HeaderSender::Domain(from.rsplit_once('@').unwrap().1)
    };
    let relay = authorize_relay(tenant, profile, &facts, p1(mail_from), header);
    let v = judge_recipient(tenant, &facts, p1(mail_from), &relay, rcpt);
    (relay, v)
}

fn relay_denied(v: &RecipientVerdict) -> bool {
    matches!(v, RecipientVerdict::Reject(Rejection::RelayAccessDenied(_)))
}

const EXT: &str = "bob@example.org";

#[test]
fn worked_examples_of_the_rules_document() {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Want {
        Relayed,
        Inbound,
        Refused5764,
    }
    use Want::*;
    /// peer, trusted certificate names, P1, P2, rcpt, exo-2023, exo-legacy
    type Row<'a> = (
        &'a str,
        &'a [&'a str],
        &'a str,
        &'a str,
        &'a str,
        Want,
        Want,
    );
    let rows: &[Row] = &[
        (
            "203.0.113.10",
            &[],
            "app@contoso.com",
            "app@contoso.com",
            EXT,
            Relayed,
            Relayed,
        ),
        (
            "203.0.113.10",
            &[],
            "app@example.net",
            "app@contoso.com",
            EXT,
            Refused5764,
            Relayed,
        ),
        (
            "203.0.113.10",
            &[],
            "",
            "postmaster@contoso.com",
            EXT,
            Refused5764,
            Relayed,
        ),
        (
            "203.0.113.10",
            &[],
            "app@example.net",
            "anything@example.com",
            "alice@contoso.com",
            Inbound,
            Inbound,
        ),
        (
            "198.51.100.7",
            &[],
            "app@contoso.com",
            "anything@example.com",
            EXT,
            Refused5764,
            Refused5764,
        ),
        (
            "198.51.100.7",
            &["mail.contoso.com"],
            "",
            "anything@example.com",
            EXT,
            Relayed,
            Relayed,
        ),
        // A self-signed certificate is no identity: the session passes no names.
        (
            "198.51.100.7",
            &[],
            "",
            "anything@example.com",
            EXT,
            Refused5764,
            Refused5764,
        ),
        (
            "203.0.113.10",
            &[],
            "user@sales.fabrikam.com",
            "anything@example.com",
            EXT,
            Relayed,
            Relayed,
        ),
    ];
    let tenant = baseline();
    for (i, (peer, certs, mail_from, from, rcpt, exo2023, legacy)) in rows.iter().enumerate() {
        for (profile, want) in [(Profile::Exo2023, exo2023), (Profile::ExoLegacy, legacy)] {
            let (_, v) = verdict(&tenant, profile, peer, certs, mail_from, from, rcpt);
            let got = match v {
                RecipientVerdict::Accept(AcceptReason::Originating) => Relayed,
                RecipientVerdict::Accept(AcceptReason::Inbound { .. }) => Inbound,
                ref r if relay_denied(r) => Refused5764,
                other => panic!("row {i} {profile:?}: unexpected {other:?}"),
            };
            assert_eq!(got, *want, "row {i} under {profile:?}");
        }
    }
}

#[test]
fn worked_examples_name_the_branch_that_decided() {
    let t = baseline();
    let (relay, _) = verdict(
        &t,
        Profile::Exo2023,
        "203.0.113.10",
        &[],
        "app@contoso.com",
        "",
        EXT,
    );
    assert_eq!(
        relay,
        RelayDecision::Authorized {
            condition1: Condition1::EnvelopeSender {
                domain: "contoso.com".into()
            },
            condition2: Condition2::SenderIpAddress {
                connector: "C-IP".into()
            },
        }
    );
    let (relay, _) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &["mail.contoso.com"],
        "",
        "",
        EXT,
    );
    assert_eq!(
        relay,
        RelayDecision::Authorized {
            condition1: Condition1::CertificateDomain {
                connector: "C-CERT".into(),
                accepted_domain: "contoso.com".into()
            },
            condition2: Condition2::TlsSenderCertificate {
                connector: "C-CERT".into()
            },
        }
    );
    let (relay, _) = verdict(
        &t,
        Profile::ExoLegacy,
        "203.0.113.10",
        &[],
        "",
        "postmaster@contoso.com",
        EXT,
    );
    match relay {
        RelayDecision::Authorized {
            condition1,
            condition2,
        } => {
            assert_eq!(condition1.branch(), "1c");
            assert_eq!(
                (condition2.branch(), condition2.connector()),
                ("ip", "C-IP")
            );
        }
        other => panic!("{other:?}"),
    }
    let (relay, _) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "app@contoso.com",
        "",
        EXT,
    );
    assert_eq!(
        relay,
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector)
    );
    let (relay, _) = verdict(
        &t,
        Profile::Exo2023,
        "203.0.113.10",
        &[],
        "app@example.net",
        "",
        EXT,
    );
    assert_eq!(
        relay,
        RelayDecision::Denied(RelayDenial::SenderNotAttributed {
            condition2: Condition2::SenderIpAddress {
                connector: "C-IP".into()
            }
        })
    );
}

#[test]
fn null_sender_over_ip_connector_is_refused() {
    let (_, v) = verdict(
        &baseline(),
        Profile::Exo2023,
        "203.0.113.10",
        &[],
        "",
        "postmaster@contoso.com",
        EXT,
    );
    assert!(relay_denied(&v));
}

#[test]
fn header_from_does_not_count_since_november_2023() {
    let (_, v) = verdict(
        &baseline(),
        Profile::Exo2023,
        "203.0.113.10",
        &[],
        "app@example.net",
        "ceo@contoso.com",
        EXT,
    );
    assert!(relay_denied(&v));
}

#[test]
fn subdomain_of_authoritative_domain_is_not_accepted() {
    let (_, v) = verdict(
        &baseline(),
        Profile::Exo2023,
        "203.0.113.10",
        &[],
        "app@sales.contoso.com",
        "",
        EXT,
    );
    assert!(relay_denied(&v));
    // Nor is it an accepted recipient domain.
    let (_, v) = verdict(
        &baseline(),
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@example.net",
        "",
        "a@sales.contoso.com",
    );
    assert!(relay_denied(&v));
}

#[test]
fn match_subdomains_covers_any_depth_but_not_lookalikes() {
    let t = baseline();
    assert!(t.accepted_domain("a.b.fabrikam.com").is_some());
    assert!(t.accepted_domain("fabrikam.com").is_some());
    assert!(t.accepted_domain("notfabrikam.com").is_none());
    assert!(t.accepted_domain("fabrikam.com.evil.example").is_none());
}

#[test]
fn domains_compare_without_case_and_trailing_dot() {
    let (_, v) = verdict(
        &baseline(),
        Profile::Exo2023,
        "203.0.113.10",
        &[],
        "App@CONTOSO.com.",
        "",
        EXT,
    );
    assert_eq!(v, RecipientVerdict::Accept(AcceptReason::Originating));
    let (_, v) = verdict(
        &baseline(),
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@example.net",
        "",
        "Alice@Contoso.COM.",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
}

#[test]
fn disabled_connector_matches_nothing() {
    let mut t = baseline();
    for c in &mut t.inbound_connectors {
        c.enabled = false;
    }
    let (relay, _) = verdict(
        &t,
        Profile::Exo2023,
        "203.0.113.10",
        &["mail.contoso.com"],
        "app@contoso.com",
        "",
        EXT,
    );
    assert_eq!(
        relay,
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector)
    );
}

#[test]
fn partner_connector_never_authorises_relay() {
    let mut t = baseline();
    for c in &mut t.inbound_connectors {
        c.connector_type = ConnectorType::Partner;
    }
    let (relay, v) = verdict(
        &t,
        Profile::Exo2023,
        "203.0.113.10",
        &["mail.contoso.com"],
        "app@contoso.com",
        "",
        EXT,
    );
    assert_eq!(
        relay,
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector)
    );
    assert!(relay_denied(&v));
}

#[test]
fn wildcard_connector_matches_bare_and_deep_names() {
    let w = CertificateName::Wildcard("contoso.com".into());
    assert!(w.matches("contoso.com"));
    assert!(w.matches("mail.contoso.com"));
    assert!(w.matches("a.b.c.contoso.com"));
    assert!(!w.matches("contoso.com.example.net"));
    assert!(!w.matches("notcontoso.com"));
    for name in ["contoso.com", "a.b.contoso.com"] {
        let (_, v) = verdict(
            &baseline(),
            Profile::Exo2023,
            "198.51.100.7",
            &[name],
            "",
            "",
            EXT,
        );
        assert_eq!(
            v,
            RecipientVerdict::Accept(AcceptReason::Originating),
            "{name}"
        );
    }
}

#[test]
fn wildcard_certificate_matches_only_literal_wildcard_connector() {
    assert!(CertificateName::Wildcard("contoso.com".into()).matches("*.contoso.com"));
    assert!(!CertificateName::Exact("mail.contoso.com".into()).matches("*.contoso.com"));
    assert!(!CertificateName::Wildcard("mail.contoso.com".into()).matches("*.contoso.com"));
}

#[test]
fn exact_certificate_connector_needs_its_own_name_accepted() {
    let mut t = baseline();
    t.inbound_connectors[1].tls_sender_certificate_name =
        Some(CertificateName::Exact("mail.contoso.com".into()));
    let (relay, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &["mail.contoso.com"],
        "",
        "",
        EXT,
    );
    // Condition 2 holds by certificate; 1a does not, because mail.contoso.com is not accepted.
    assert_eq!(
        relay,
        RelayDecision::Denied(RelayDenial::SenderNotAttributed {
            condition2: Condition2::TlsSenderCertificate {
                connector: "C-CERT".into()
            }
        })
    );
    assert!(relay_denied(&v));
    t.accepted_domains.push(accepted(
        "mail.contoso.com",
        DomainType::Authoritative,
        false,
    ));
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &["mail.contoso.com"],
        "",
        "",
        EXT,
    );
    assert_eq!(v, RecipientVerdict::Accept(AcceptReason::Originating));
}

#[test]
fn certificate_connector_with_accepted_p1_relays_by_1b() {
    let mut t = baseline();
    t.inbound_connectors[1].tls_sender_certificate_name =
        Some(CertificateName::Exact("mail.contoso.com".into()));
    let (relay, _) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &["mail.contoso.com"],
        "app@contoso.com",
        "",
        EXT,
    );
    assert!(
        matches!(
            relay,
            RelayDecision::Authorized {
                condition1: Condition1::EnvelopeSender { .. },
                ..
            }
        ),
        "{relay:?}"
    );
}

#[test]
fn legacy_profile_awaits_header_sender() {
    let t = baseline();
    let facts = SessionFacts {
        peer_ip: "203.0.113.10".parse().unwrap(),
        certificate_names: &[],
    };
    let relay = authorize_relay(
        &t,
        Profile::ExoLegacy,
        &facts,
        ReversePath::Null,
        HeaderSender::NotYetKnown,
    );
    assert_eq!(
        relay,
        RelayDecision::AwaitingHeaderSender {
            condition2: Condition2::SenderIpAddress {
                connector: "C-IP".into()
            }
        }
    );
    assert_eq!(
        judge_recipient(&t, &facts, ReversePath::Null, &relay, EXT),
        RecipientVerdict::AwaitingHeaderSender
    );
    // Inbound recipients need no header.
    assert!(matches!(
        judge_recipient(&t, &facts, ReversePath::Null, &relay, "alice@contoso.com"),
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
    // exo-2023 never waits.
    let relay = authorize_relay(
        &t,
        Profile::Exo2023,
        &facts,
        ReversePath::Null,
        HeaderSender::NotYetKnown,
    );
    assert!(matches!(relay, RelayDecision::Denied(_)));
    // Without condition 2 no header can help, even under exo-legacy.
    let outside = SessionFacts {
        peer_ip: "198.51.100.7".parse().unwrap(),
        certificate_names: &[],
    };
    let relay = authorize_relay(
        &t,
        Profile::ExoLegacy,
        &outside,
        ReversePath::Null,
        HeaderSender::NotYetKnown,
    );
    assert_eq!(
        relay,
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector)
    );
}

#[test]
fn legacy_profile_without_from_header_is_refused() {
    let (_, v) = verdict(
        &baseline(),
        Profile::ExoLegacy,
        "203.0.113.10",
        &[],
        "",
        "",
        EXT,
    );
    assert!(relay_denied(&v));
}

fn partner(
    restrict_ip: bool,
    restrict_cert: bool,
    sender_domains: Vec<SenderDomain>,
) -> InboundConnector {
    InboundConnector {
        name: "Partner".into(),
        connector_type: ConnectorType::Partner,
        enabled: true,
        sender_ip_addresses: vec!["192.0.2.0/24".parse().unwrap()],
        tls_sender_certificate_name: Some(CertificateName::Exact("mx.partner.example".into())),
        sender_domains,
        restrict_domains_to_ip_addresses: restrict_ip,
        restrict_domains_to_certificate: restrict_cert,
    }
}

#[test]
fn partner_connector_restricting_to_its_ips_refuses_others_with_5_7_51() {
    let mut t = baseline();
    t.inbound_connectors.push(partner(
        true,
        false,
        vec![SenderDomain::Exact("partner.example".into())],
    ));
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@partner.example",
        "",
        "alice@contoso.com",
    );
    assert_eq!(
        v,
        RecipientVerdict::Reject(Rejection::PartnerConnectorRestriction {
            connector: "Partner".into()
        })
    );
    // From its own IPs it is fine.
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "192.0.2.5",
        &[],
        "x@partner.example",
        "",
        "alice@contoso.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
    // Other senders are not covered by its SenderDomains.
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@other.example",
        "",
        "alice@contoso.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
    // A named domain does not cover the null sender; `*` does.
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "",
        "",
        "alice@contoso.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
}

#[test]
fn partner_connector_restricting_to_its_certificate_refuses_others_with_5_7_51() {
    let mut t = baseline();
    t.inbound_connectors
        .push(partner(false, true, vec![SenderDomain::Any]));
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "",
        "",
        "alice@contoso.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Reject(Rejection::PartnerConnectorRestriction { .. })
    ));
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &["mx.partner.example"],
        "",
        "",
        "alice@contoso.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
    // Sender domains with subdomains.
    let mut t = baseline();
    t.inbound_connectors.push(partner(
        false,
        true,
        vec![SenderDomain::WithSubdomains("partner.example".into())],
    ));
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@eu.partner.example",
        "",
        "alice@contoso.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Reject(Rejection::PartnerConnectorRestriction { .. })
    ));
}

#[test]
fn direct_send_refused_with_5_7_68_when_reject_direct_send_is_on() {
    let mut t = baseline();
    t.reject_direct_send = true;
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "spoof@contoso.com",
        "",
        "alice@contoso.com",
    );
    assert_eq!(v, RecipientVerdict::Reject(Rejection::DirectSendNotAllowed));
    // A foreign P1 is ordinary inbound mail.
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@example.net",
        "",
        "alice@contoso.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
    // An authorised (originating) message is not direct send.
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "203.0.113.10",
        &[],
        "app@contoso.com",
        "",
        "alice@contoso.com",
    );
    assert_eq!(v, RecipientVerdict::Accept(AcceptReason::Originating));
}

#[test]
fn unknown_recipient_refused_with_5_4_1_case_insensitively() {
    let mut t = baseline();
    t.accepted_domains[0].recipients = Some(HashSet::from(["alice@contoso.com".to_string()]));
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@example.net",
        "",
        "nobody@contoso.com",
    );
    assert_eq!(v, RecipientVerdict::Reject(Rejection::RecipientNotFound));
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@example.net",
        "",
        "ALICE@Contoso.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
}

#[test]
fn recipient_lists_apply_only_to_authoritative_domains() {
    let mut t = baseline();
    t.accepted_domains[1].recipients = Some(HashSet::from(["a@fabrikam.com".to_string()]));
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@example.net",
        "",
        "b@fabrikam.com",
    );
    assert!(matches!(
        v,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
}

#[test]
fn other_tenant_domain_is_accepted_as_inbound_there() {
    let mut t = baseline();
    t.other_tenant_domains = vec!["northwind.example".into()];
    let (_, v) = verdict(
        &t,
        Profile::Exo2023,
        "198.51.100.7",
        &[],
        "x@example.net",
        "",
        "z@Northwind.Example",
    );
    assert_eq!(
        v,
        RecipientVerdict::Accept(AcceptReason::OtherTenant {
            domain: "northwind.example".into()
        })
    );
}

#[test]
fn ipv4_mapped_ipv6_peer_matches_ip_connector_and_plain_ipv6_does_not() {
    let (relay, _) = verdict(
        &baseline(),
        Profile::Exo2023,
        "::ffff:203.0.113.10",
        &[],
        "app@contoso.com",
        "",
        EXT,
    );
    assert!(matches!(relay, RelayDecision::Authorized { .. }));
    let (relay, _) = verdict(
        &baseline(),
        Profile::Exo2023,
        "2001:db8::1",
        &[],
        "app@contoso.com",
        "",
        EXT,
    );
    assert_eq!(
        relay,
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector)
    );
}

#[test]
fn recipient_without_domain_or_with_ip_literal_is_relay() {
    for rcpt in ["postmaster", "x@[192.0.2.1]", "x@"] {
        let (_, v) = verdict(
            &baseline(),
            Profile::Exo2023,
            "198.51.100.7",
            &[],
            "x@example.net",
            "",
            rcpt,
        );
        assert!(relay_denied(&v), "{rcpt}: {v:?}");
    }
}

#[test]
fn reply_texts_are_exchange_onlines() {
    let d = RelayDenial::NoOnPremisesConnector;
    assert_eq!(
        Rejection::RelayAccessDenied(d).reply(),
        Reply::new(550, "5.7.64", "TenantAttribution; Relay Access Denied")
    );
    assert_eq!(
        Rejection::RecipientNotFound.reply(),
        Reply::new(
            550,
            "5.4.1",
            "Recipient address rejected: Access denied. AS(201806281)"
        )
    );
    assert_eq!(
        Rejection::DirectSendNotAllowed.reply(),
        Reply::new(550, "5.7.68", "TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources")
    );
    let Reply {
        code,
        enhanced,
        text,
    } = Rejection::PartnerConnectorRestriction {
        connector: "P".into(),
    }
    .reply();
    assert_eq!((code, enhanced), (550, "5.7.51"));
    assert!(text.starts_with("TenantInboundAttribution; There is a partner connector configured"));
    assert!(text.ends_with("RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set"));
}

// ---------------------------------------------------------------------------------------------
// A whole transaction under both profiles (what `relaygate check`, the audit log and the report
// show), and the fix suggested for what the November 2023 change broke.
// ---------------------------------------------------------------------------------------------

fn compare(
    peer: &str,
    certs: &[&str],
    mail_from: &str,
    from: &str,
    rcpts: &[&str],
) -> (Comparison, Option<String>) {
    let tenant = baseline();
    let names: Vec<String> = certs.iter().map(|s| s.to_string()).collect();
    let facts = SessionFacts {
        peer_ip: peer.parse().unwrap(),
        certificate_names: &names,
    };
    let header = if from.is_empty() {
        HeaderSender::Absent
    } else {
        HeaderSender::Domain(from.rsplit_once('@').unwrap().1)
    };
    let c = Comparison::evaluate(&tenant, &facts, p1(mail_from), header, rcpts);
    let fix = suggest_fix(&tenant, &facts, p1(mail_from), header, &c.exo_2023);
    (c, fix)
}

#[test]
fn foreign_p1_with_accepted_p2_is_what_november_2023_broke() {
    let (c, fix) = compare(
        "203.0.113.10",
        &[],
        "app@example.net",
        "app@contoso.com",
        &[EXT],
    );
    assert_eq!(c.exo_legacy.verdict(), Verdict::Accepted);
    assert_eq!(c.exo_2023.verdict().to_string(), "refused 550 5.7.64");
    assert!(c.broken_by_november_2023());
    let fix = fix.expect("a refused flow gets a fix");
    assert!(
        fix.contains("From: header (contoso.com) no longer counts"),
        "{fix}"
    );
    assert!(
        fix.contains("add example.net as an accepted domain"),
        "{fix}"
    );
}

#[test]
fn null_sender_ndr_over_ip_connector_gets_the_certificate_fix() {
    let (c, fix) = compare("203.0.113.10", &[], "", "postmaster@contoso.com", &[EXT]);
    assert!(c.broken_by_november_2023());
    let fix = fix.unwrap();
    assert!(fix.starts_with("the null sender"), "{fix}");
    assert!(
        fix.contains("connector \"C-CERT\" (TlsSenderCertificateName *.contoso.com)"),
        "{fix}"
    );
}

#[test]
fn flow_refused_under_both_profiles_is_not_blamed_on_november_2023() {
    let (c, fix) = compare(
        "198.51.100.7",
        &[],
        "app@contoso.com",
        "app@contoso.com",
        &[EXT],
    );
    assert_eq!(c.exo_2023.verdict().to_string(), "refused 550 5.7.64");
    assert_eq!(c.exo_legacy.verdict().to_string(), "refused 550 5.7.64");
    assert!(!c.broken_by_november_2023());
    assert!(fix
        .unwrap()
        .contains("add 198.51.100.7 to the SenderIPAddresses"));
}

#[test]
fn authorised_flow_has_no_fix_and_every_recipient_is_originating() {
    let (c, fix) = compare(
        "198.51.100.7",
        &["mail.contoso.com"],
        "",
        "",
        &[EXT, "alice@contoso.com"],
    );
    assert_eq!(fix, None);
    for e in [&c.exo_2023, &c.exo_legacy] {
        assert_eq!(e.verdict(), Verdict::Accepted);
        assert!(e
            .recipients
            .iter()
            .all(|(_, v)| *v == RecipientVerdict::Accept(AcceptReason::Originating)));
    }
}

#[test]
fn verdict_is_the_first_refused_recipient_in_order() {
    let (c, _) = compare(
        "198.51.100.7",
        &[],
        "app@example.net",
        "",
        &["alice@contoso.com", EXT],
    );
    assert_eq!(c.exo_2023.recipients.len(), 2);
    assert!(matches!(
        c.exo_2023.recipients[0].1,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
    assert_eq!(c.exo_2023.verdict().to_string(), "refused 550 5.7.64");
}

#[test]
fn certificate_connector_whose_name_is_not_accepted_gets_that_fix() {
    let mut tenant = baseline();
    tenant.inbound_connectors.push(on_premises(
        "C-RELAY",
        &[],
        Some(CertificateName::Exact("relay.example.net".into())),
    ));
    let names = vec!["relay.example.net".to_string()];
    let facts = SessionFacts {
        peer_ip: "198.51.100.7".parse().unwrap(),
        certificate_names: &names,
    };
    let e = evaluate(
        &tenant,
        Profile::Exo2023,
        &facts,
        ReversePath::Null,
        HeaderSender::Absent,
        &[EXT],
    );
    let fix = suggest_fix(&tenant, &facts, ReversePath::Null, HeaderSender::Absent, &e).unwrap();
    assert!(
        fix.starts_with("add relay.example.net as an accepted domain"),
        "{fix}"
    );
}

#[test]
fn certificate_without_a_connector_gets_a_connector_fix_in_the_right_form() {
    let tenant = baseline();
    let fix_for = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let facts = SessionFacts {
            peer_ip: "198.51.100.7".parse().unwrap(),
            certificate_names: &names,
        };
        let mut t = tenant.clone();
        t.inbound_connectors.retain(|c| c.name == "C-IP");
        let e = evaluate(
            &t,
            Profile::Exo2023,
            &facts,
            ReversePath::Null,
            HeaderSender::Absent,
            &[EXT],
        );
        suggest_fix(&t, &facts, ReversePath::Null, HeaderSender::Absent, &e).unwrap()
    };
    // A wildcard certificate: the connector value is the same wildcard, its base accepted.
    assert_eq!(
        fix_for(&["*.example.net"]),
        "add an OnPremises connector with TlsSenderCertificateName = *.example.net and add example.net as an accepted domain"
    );
    // A SAN that is already accepted is preferred over the CN.
    assert_eq!(
        fix_for(&["relay01.example.net", "contoso.com"]),
        "add an OnPremises connector with TlsSenderCertificateName = contoso.com"
    );
}

#[test]
fn unknown_recipient_gets_the_directory_fix() {
    let mut tenant = baseline();
    tenant.accepted_domains[0].recipients = Some(HashSet::from(["alice@contoso.com".to_string()]));
    let facts = SessionFacts {
        peer_ip: "198.51.100.7".parse().unwrap(),
        certificate_names: &[],
    };
    let p1 = ReversePath::Domain("example.net");
    let e = evaluate(
        &tenant,
        Profile::Exo2023,
        &facts,
        p1,
        HeaderSender::Absent,
        &["alice@contoso.com", "nobody@contoso.com"],
    );
    assert_eq!(e.verdict().to_string(), "refused 550 5.4.1");
    let fix = suggest_fix(&tenant, &facts, p1, HeaderSender::Absent, &e).unwrap();
    assert!(
        fix.starts_with("nobody@contoso.com is not a known recipient"),
        "{fix}"
    );
}

#[test]
fn a_transaction_without_its_header_is_undecided_under_exo_legacy_only() {
    let tenant = baseline();
    let facts = SessionFacts {
        peer_ip: "203.0.113.10".parse().unwrap(),
        certificate_names: &[],
    };
    let c = Comparison::evaluate(
        &tenant,
        &facts,
        ReversePath::Domain("example.net"),
        HeaderSender::NotYetKnown,
        &[EXT],
    );
    assert_eq!(c.exo_2023.verdict().to_string(), "refused 550 5.7.64");
    assert_eq!(c.exo_legacy.verdict(), Verdict::Undecided);
    assert!(!c.broken_by_november_2023());
}
