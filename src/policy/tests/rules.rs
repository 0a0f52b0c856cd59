//! Rules below the level of a whole example: how names match, which branch and which connector
//! the decision names, the legacy profile's wait for the header, the reply texts.

use super::*;

fn relay(tenant: &Tenant, profile: Profile, peer: &str, cert: &str, p1s: &str) -> RelayDecision {
    let client = Client::new(peer, cert);
    authorize_relay(
        tenant,
        profile,
        &client.facts(),
        p1(p1s),
        HeaderSender::Absent,
    )
}

#[test]
fn relay_decision_names_the_branch_and_connector_that_decided() {
    let t = baseline();
    assert_eq!(
        relay(
            &t,
            Profile::Exo2023,
            "203.0.113.10",
            "none",
            "app@contoso.com"
        ),
        RelayDecision::Authorized {
            condition1: Condition1::EnvelopeSender {
                domain: "contoso.com".into()
            },
            condition2: Condition2::SenderIpAddress {
                connector: "C-IP".into()
            },
        }
    );
    assert_eq!(
        relay(
            &t,
            Profile::Exo2023,
            "198.51.100.7",
            "mail.contoso.com",
            "<>"
        ),
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
    let client = Client::new("203.0.113.10", "none");
    let legacy = authorize_relay(
        &t,
        Profile::ExoLegacy,
        &client.facts(),
        ReversePath::Null,
        p2("postmaster@contoso.com"),
    );
    match legacy {
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
    assert_eq!(
        relay(
            &t,
            Profile::Exo2023,
            "198.51.100.7",
            "none",
            "app@contoso.com"
        ),
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector)
    );
    assert_eq!(
        relay(
            &t,
            Profile::Exo2023,
            "203.0.113.10",
            "none",
            "app@example.net"
        ),
        RelayDecision::Denied(RelayDenial::SenderNotAttributed {
            condition2: Condition2::SenderIpAddress {
                connector: "C-IP".into()
            }
        })
    );
    // Condition 2 by certificate, 1a not: mail.contoso.com is not itself accepted.
    let exact = tenant("exact-cert").expect("a documented variant");
    assert_eq!(
        relay(
            &exact,
            Profile::Exo2023,
            "198.51.100.7",
            "mail.contoso.com",
            "<>"
        ),
        RelayDecision::Denied(RelayDenial::SenderNotAttributed {
            condition2: Condition2::TlsSenderCertificate {
                connector: "C-CERT".into()
            }
        })
    );
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
fn wildcard_connector_matches_bare_and_deep_names() {
    let w = CertificateName::Wildcard("contoso.com".into());
    assert!(w.matches("contoso.com"));
    assert!(w.matches("mail.contoso.com"));
    assert!(w.matches("a.b.c.contoso.com"));
    assert!(!w.matches("contoso.com.example.net"));
    assert!(!w.matches("notcontoso.com"));
}

#[test]
fn wildcard_certificate_matches_only_literal_wildcard_connector() {
    assert!(CertificateName::Wildcard("contoso.com".into()).matches("*.contoso.com"));
    assert!(!CertificateName::Exact("mail.contoso.com".into()).matches("*.contoso.com"));
    assert!(!CertificateName::Wildcard("mail.contoso.com".into()).matches("*.contoso.com"));
}

#[test]
fn legacy_profile_awaits_header_sender() {
    let t = baseline();
    let inside = Client::new("203.0.113.10", "none");
    let facts = inside.facts();
    let awaiting = |profile| {
        authorize_relay(
            &t,
            profile,
            &facts,
            ReversePath::Null,
            HeaderSender::NotYetKnown,
        )
    };
    let relay = awaiting(Profile::ExoLegacy);
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
        judge_recipient(&t, &facts, ReversePath::Null, &relay, ALICE),
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
    // exo-2023 never waits.
    assert!(matches!(
        awaiting(Profile::Exo2023),
        RelayDecision::Denied(_)
    ));
    // Without condition 2 no header can help, even under exo-legacy.
    let outside = Client::new("198.51.100.7", "none");
    assert_eq!(
        authorize_relay(
            &t,
            Profile::ExoLegacy,
            &outside.facts(),
            ReversePath::Null,
            HeaderSender::NotYetKnown,
        ),
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector)
    );
}

#[test]
fn reply_texts_are_exchange_onlines() {
    assert_eq!(
        reply_line(&Rejection::RelayAccessDenied(
            RelayDenial::NoOnPremisesConnector
        )),
        "550 5.7.64 TenantAttribution; Relay Access Denied"
    );
    assert_eq!(
        reply_line(&Rejection::RecipientNotFound),
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
    );
    assert_eq!(
        reply_line(&Rejection::DirectSendNotAllowed),
        "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources"
    );
    let partner = reply_line(&Rejection::PartnerConnectorRestriction {
        connector: "P".into(),
    });
    assert!(
        partner.starts_with(
            "550 5.7.51 TenantInboundAttribution; There is a partner connector configured"
        ),
        "{partner}"
    );
    assert!(
        partner.ends_with("RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set"),
        "{partner}"
    );
    assert_eq!(
        reply_line(&Rejection::RequireTls {
            connector: "P".into()
        }),
        "454 4.7.0 Failed to establish appropriate TLS channel: Access Denied"
    );
}

/// The verdict for `alice@contoso.com` under both profiles, which must agree: Partner
/// connectors judge inbound mail, where the profiles do not differ.
fn inbound_verdict(tenant: &Tenant, peer: &str, certificate: &str, p1s: &str) -> RecipientVerdict {
    let client = Client::new(peer, certificate);
    let [new, legacy] = [Profile::Exo2023, Profile::ExoLegacy].map(|profile| {
        judge(tenant, profile, &client, p1s, "none", &[ALICE]).recipients[0]
            .1
            .clone()
    });
    assert_eq!(new, legacy, "{peer} {certificate} {p1s}");
    new
}

fn require_tls_refusal(connector: &str) -> RecipientVerdict {
    RecipientVerdict::Reject(Rejection::RequireTls {
        connector: connector.into(),
    })
}

#[test]
fn require_tls_is_checked_before_the_partner_restriction_under_both_profiles() {
    let t = tenant("partner-tls").expect("a documented variant");
    // Neither TLS nor the partner's address: TLS is what the sender is told about.
    assert_eq!(
        inbound_verdict(&t, "198.51.100.7", NO_TLS, "x@partner.example"),
        require_tls_refusal("P-RESTRICT")
    );
    // Under TLS, the restriction to its addresses still applies.
    assert_eq!(
        inbound_verdict(&t, "198.51.100.7", "none", "x@partner.example"),
        RecipientVerdict::Reject(Rejection::PartnerConnectorRestriction {
            connector: "P-RESTRICT".into()
        })
    );
    // Its subdomains are not covered by a named SenderDomains entry.
    assert!(matches!(
        inbound_verdict(&t, "192.0.2.5", NO_TLS, "x@eu.partner.example"),
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
}

#[test]
fn require_tls_binds_only_enabled_partner_connectors() {
    let mut t = baseline();
    let mut p = on_premises("P-TLS", &["192.0.2.0/24"], None);
    p.connector_type = ConnectorType::Partner;
    p.require_tls = true;
    t.inbound_connectors.push(p);
    // SenderDomains `*`: every P1, the null sender included.
    for p1s in ["x@partner.example", "<>"] {
        assert_eq!(
            inbound_verdict(&t, "192.0.2.5", NO_TLS, p1s),
            require_tls_refusal("P-TLS"),
            "{p1s}"
        );
    }
    let inbound = |t: &Tenant| {
        matches!(
            inbound_verdict(t, "192.0.2.5", NO_TLS, "x@partner.example"),
            RecipientVerdict::Accept(AcceptReason::Inbound { .. })
        )
    };
    let mut disabled = t.clone();
    disabled.inbound_connectors[2].enabled = false;
    assert!(inbound(&disabled), "a disabled connector binds nothing");
    let mut on_prem = t.clone();
    on_prem.inbound_connectors[2].connector_type = ConnectorType::OnPremises;
    assert!(
        inbound(&on_prem),
        "RequireTls is informational on OnPremises"
    );
}

#[test]
fn require_tls_does_not_touch_relayed_mail() {
    let mut t = tenant("partner-tls").expect("a documented variant");
    t.inbound_connectors[2].sender_domains = vec![SenderDomain::Any];
    // Authorised relay is the tenant's own mail: Partner connectors do not judge it, even for
    // a recipient in an accepted domain.
    let inside = Client::new("203.0.113.10", NO_TLS);
    for profile in [Profile::Exo2023, Profile::ExoLegacy] {
        let e = judge(
            &t,
            profile,
            &inside,
            "app@contoso.com",
            "none",
            &[ALICE, EXT],
        );
        assert_eq!(e.verdict(), Verdict::Accepted, "{}", profile.as_str());
    }
}
