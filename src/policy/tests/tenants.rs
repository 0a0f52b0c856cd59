//! One gate, many tenants (MC1226222): which tenant a transaction is attributed to, and what
//! another tenant's recipient gets. The worked examples (`two-tenants`) show whole transactions;
//! these pin the order and the edges.

use super::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

#[test]
fn the_certificate_attributes_before_the_p1_domain_and_the_p1_before_a_recipient() {
    let tenants = two_tenants();
    let cert = names(&["mail.tailspin.example"]);
    let by_cert = attribute_sender(&tenants, &cert, ReversePath::Domain("contoso.com"));
    assert_eq!(
        by_cert,
        Some(Attribution {
            tenant: 1,
            by: AttributedBy::Certificate
        })
    );
    let by_p1 = attribute_sender(&tenants, &[], ReversePath::Domain("Contoso.COM."));
    assert_eq!(
        by_p1,
        Some(Attribution {
            tenant: 0,
            by: AttributedBy::EnvelopeSender
        })
    );
    assert_eq!(attribute_sender(&tenants, &[], ReversePath::Null), None);
    assert_eq!(
        attribute_recipient(&tenants, "a@tailspin.example"),
        Some(Attribution {
            tenant: 1,
            by: AttributedBy::Recipient
        })
    );
    assert_eq!(attribute_recipient(&tenants, "bob@example.org"), None);
}

#[test]
fn a_certificate_name_that_is_no_accepted_domain_of_a_tenant_attributes_nothing() {
    let mut tenants = two_tenants();
    // An exact connector name that is not accepted: MC1226222's first mistake.
    tenants[1].inbound_connectors[1].tls_sender_certificate_name =
        Some(CertificateName::Exact("relay.tailspin.example".into()));
    let cert = names(&["relay.tailspin.example"]);
    assert_eq!(attribute_sender(&tenants, &cert, ReversePath::Null), None);
}

#[test]
fn the_first_recipient_of_a_tenant_attributes_and_those_before_it_are_nobodys_relay() {
    let tenants = two_tenants();
    let client = Client::new("198.51.100.7", "none");
    let e = judge_among(
        &tenants,
        Profile::Exo2023,
        &client,
        "x@example.net",
        "none",
        &[EXT, "a@tailspin.example", ALICE],
    );
    assert_eq!(e.attribution.map(|a| a.tenant), Some(1));
    assert_eq!(
        e.recipients[0].1,
        RecipientVerdict::Reject(Rejection::RelayAccessDenied(RelayDenial::NoTenant))
    );
    assert!(matches!(
        e.recipients[1].1,
        RecipientVerdict::Accept(AcceptReason::Inbound { .. })
    ));
    let RecipientVerdict::Reject(other) = &e.recipients[2].1 else {
        panic!("{:?}", e.recipients[2]);
    };
    assert_eq!(reply_line(other), "452 4.5.3 Too many recipients");
}

#[test]
fn another_tenants_recipient_is_a_temporary_refusal_never_a_5xx() {
    let tenants = two_tenants();
    let client = Client::new("203.0.113.10", "none");
    for profile in [Profile::Exo2023, Profile::ExoLegacy] {
        let e = judge_among(
            &tenants,
            profile,
            &client,
            "app@contoso.com",
            "none",
            &["a@tailspin.example"],
        );
        let RecipientVerdict::Reject(r) = &e.recipients[0].1 else {
            panic!("{e:?}");
        };
        assert_eq!(r.reply().code, 452, "{r:?}");
        assert_eq!(enhanced_code(r), "4.5.3");
    }
}

#[test]
fn when_nothing_attributes_every_recipient_is_refused_5_7_64() {
    let tenants = two_tenants();
    let client = Client::new("203.0.113.10", "none");
    let e = judge_among(
        &tenants,
        Profile::ExoLegacy,
        &client,
        "<>",
        "postmaster@contoso.com",
        &[EXT, "carol@example.net"],
    );
    assert_eq!(e.attribution, None);
    assert_eq!(e.relay, RelayDecision::Denied(RelayDenial::NoTenant));
    for (_, v) in &e.recipients {
        let RecipientVerdict::Reject(r) = v else {
            panic!("{v:?}");
        };
        assert_eq!(enhanced_code(r), "5.7.64");
    }
}

#[test]
fn one_tenant_is_every_transactions_whatever_the_facts() {
    let tenants = vec![baseline()];
    let client = Client::new("198.51.100.7", "none");
    let among = judge_among(
        &tenants,
        Profile::Exo2023,
        &client,
        "x@example.net",
        "none",
        &[EXT],
    );
    let alone = judge(
        &tenants[0],
        Profile::Exo2023,
        &client,
        "x@example.net",
        "none",
        &[EXT],
    );
    assert_eq!(among, alone);
    assert_eq!(
        among.attribution.map(|a| a.by),
        Some(AttributedBy::OnlyTenant)
    );
}
