//! A whole transaction under both profiles (what `relaygate check`, the audit log and the report
//! show), and the fix suggested for what the November 2023 change broke.

use super::*;

/// The transaction in the document's notation, on the `base` tenant: both profiles, and the fix
/// suggested under exo-2023.
fn compare(
    peer: &str,
    certificate: &str,
    mail_from: &str,
    from: &str,
    rcpts: &[&str],
) -> (Comparison, Option<String>) {
    compare_on(&baseline(), peer, certificate, mail_from, from, rcpts)
}

fn compare_on(
    tenant: &Tenant,
    peer: &str,
    certificate: &str,
    mail_from: &str,
    from: &str,
    rcpts: &[&str],
) -> (Comparison, Option<String>) {
    let client = Client::new(peer, certificate);
    let facts = client.facts();
    let c = Comparison::evaluate(tenant, &facts, p1(mail_from), p2(from), rcpts);
    let fix = suggest_fix(tenant, &facts, p1(mail_from), p2(from), &c.exo_2023);
    (c, fix)
}

#[test]
fn foreign_p1_with_accepted_p2_is_what_november_2023_broke() {
    let (c, fix) = compare(
        "203.0.113.10",
        "none",
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
    let (c, fix) = compare(
        "203.0.113.10",
        "none",
        "<>",
        "postmaster@contoso.com",
        &[EXT],
    );
    assert!(c.broken_by_november_2023());
    let fix = fix.expect("a refused flow gets a fix");
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
        "none",
        "app@contoso.com",
        "app@contoso.com",
        &[EXT],
    );
    assert_eq!(c.exo_2023.verdict().to_string(), "refused 550 5.7.64");
    assert_eq!(c.exo_legacy.verdict().to_string(), "refused 550 5.7.64");
    assert!(!c.broken_by_november_2023());
    let fix = fix.expect("a refused flow gets a fix");
    assert!(
        fix.contains("add 198.51.100.7 to the SenderIPAddresses"),
        "{fix}"
    );
}

#[test]
fn authorised_flow_has_no_fix_and_every_recipient_is_originating() {
    let (c, fix) = compare(
        "198.51.100.7",
        "mail.contoso.com",
        "<>",
        "none",
        &[EXT, ALICE],
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
        "none",
        "app@example.net",
        "none",
        &[ALICE, EXT],
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
    let (_, fix) = compare_on(
        &tenant,
        "198.51.100.7",
        "relay.example.net",
        "<>",
        "none",
        &[EXT],
    );
    let fix = fix.expect("a refused flow gets a fix");
    assert!(
        fix.starts_with("add relay.example.net as an accepted domain"),
        "{fix}"
    );
}

#[test]
fn certificate_without_a_connector_gets_a_connector_fix_in_the_right_form() {
    let mut tenant = baseline();
    tenant.inbound_connectors.retain(|c| c.name == "C-IP");
    let fix_for = |certificate: &str| {
        compare_on(&tenant, "198.51.100.7", certificate, "<>", "none", &[EXT])
            .1
            .expect("a refused flow gets a fix")
    };
    // A wildcard certificate: the connector value is the same wildcard, its base accepted.
    assert_eq!(
        fix_for("*.example.net"),
        "add an OnPremises connector with TlsSenderCertificateName = *.example.net and add example.net as an accepted domain"
    );
    // A SAN that is already accepted is preferred over the CN.
    assert_eq!(
        fix_for("relay01.example.net, contoso.com"),
        "add an OnPremises connector with TlsSenderCertificateName = contoso.com"
    );
}

#[test]
fn unknown_recipient_gets_the_directory_fix() {
    let tenant = tenant("recipient-list").expect("a documented variant");
    let client = Client::new("198.51.100.7", "none");
    let e = judge(
        &tenant,
        Profile::Exo2023,
        &client,
        "x@example.net",
        "none",
        &[ALICE, "nobody@contoso.com"],
    );
    assert_eq!(e.verdict().to_string(), "refused 550 5.4.1");
    let fix = suggest_fix(
        &tenant,
        &client.facts(),
        p1("x@example.net"),
        p2("none"),
        &e,
    )
    .expect("a refused flow gets a fix");
    assert!(
        fix.starts_with("nobody@contoso.com is not a known recipient"),
        "{fix}"
    );
}

#[test]
fn a_transaction_without_its_header_is_undecided_under_exo_legacy_only() {
    let (c, _) = compare("203.0.113.10", "none", "x@example.net", "unread", &[EXT]);
    assert_eq!(c.exo_2023.verdict().to_string(), "refused 550 5.7.64");
    assert_eq!(c.exo_legacy.verdict(), Verdict::Undecided);
    assert!(!c.broken_by_november_2023());
}

#[test]
fn a_partner_sending_without_tls_is_told_to_use_starttls_under_both_profiles() {
    let tenant = tenant("partner-tls").expect("a documented variant");
    let (c, fix) = compare_on(
        &tenant,
        "192.0.2.5",
        NO_TLS,
        "x@partner.example",
        "none",
        &[ALICE],
    );
    for profile in [Profile::Exo2023, Profile::ExoLegacy] {
        assert_eq!(c.get(profile).verdict().to_string(), "refused 454 4.7.0");
    }
    assert!(
        !c.broken_by_november_2023(),
        "RequireTls is older than that"
    );
    let fix = fix.expect("a refused flow gets a fix");
    assert!(
        fix.starts_with("Partner connector \"P-RESTRICT\" requires TLS (RequireTls)")
            && fix.contains("STARTTLS"),
        "{fix}"
    );
}
